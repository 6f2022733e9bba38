"""pytest's parametrize ids, computed from source.

One `parametrize` mark or one parametrized fixture is an `Axis`: its argument
names and, for each parameter set, the id pytest gives it. A test's cases are
the product of its axes, the first axis outermost, ids joined with "-". The
rules (value -> id, `ids=`, `pytest.param(id=)`, the `argname+index`
fallback, the suffixes that make duplicates unique, ASCII escaping) follow
pytest's IdMaker.
"""

from __future__ import annotations

import ast
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from tach_ls.static_eval import (
    EnumMember,
    PatternValue,
    Env,
    EvalError,
    Evaluator,
    Lambda,
    Named,
    Opaque,
    Param,
)

_NON_PRINTABLE = {i: f"\\x{i:02x}" for i in range(128) if i not in range(32, 127)}
_NON_PRINTABLE.update({ord("\t"): "\\t", ord("\r"): "\\r", ord("\n"): "\\n"})


def ascii_escaped(val: str | bytes) -> str:
    """pytest's escaping of str and bytes ids."""
    if isinstance(val, bytes):
        text = val.decode("ascii", "backslashreplace")
    else:
        text = val.encode("unicode_escape").decode("ascii")
    return text.translate(_NON_PRINTABLE)


@dataclass(slots=True)
class Axis:
    """One parametrization: ids and marks of each parameter set."""

    argnames: list[str]
    ids: list[str]
    marks: list[tuple[str, ...]] = field(default_factory=list)
    indirect: set[str] = field(default_factory=set)
    uncertain: bool = False  # some id is a guess: real collection should confirm


class Unknown(Exception):
    """The parametrization cannot be expanded statically."""


def id_from_value(val: Any, escape: bool = True) -> str | None:
    if isinstance(val, (str, bytes)):
        return ascii_escaped(val) if escape else (val if isinstance(val, str) else ascii_escaped(val))
    if val is None or isinstance(val, (float, int, bool, complex)):
        return str(val)
    if isinstance(val, PatternValue):
        return ascii_escaped(val.pattern)
    if isinstance(val, EnumMember):
        return val.text
    if isinstance(val, (Named, Lambda)):
        return val.name
    return None


def is_guess(val: Any) -> bool:
    return isinstance(val, (Opaque, Named)) and not val.certain


def parse_argnames(value: Any) -> tuple[list[str], bool]:
    """(argnames, force_tuple) as pytest's ParameterSet._parse_parametrize_args."""
    if isinstance(value, str):
        names = [x.strip() for x in value.split(",") if x.strip()]
        return names, len(names) == 1
    if isinstance(value, (list, tuple)) and all(isinstance(x, str) for x in value):
        return list(value), False
    raise Unknown("argnames are not literal")


def _call_args(call: ast.Call, names: tuple[str, ...]) -> dict[str, ast.expr]:
    found: dict[str, ast.expr] = {}
    for name, arg in zip(names, call.args):
        found[name] = arg
    for kw in call.keywords:
        if kw.arg is None:
            raise Unknown("**kwargs in parametrize")
        found[kw.arg] = kw.value
    return found


def axis_from_parametrize(call: ast.Call, env: Env, escape: bool = True) -> Axis:
    """Evaluate one `@pytest.mark.parametrize(...)` call."""
    if any(isinstance(a, ast.Starred) for a in call.args):
        raise Unknown("*args in parametrize")
    args = _call_args(call, ("argnames", "argvalues", "indirect", "ids", "scope"))
    if "argnames" not in args or "argvalues" not in args:
        raise Unknown("parametrize without argnames or argvalues")
    ev = Evaluator(env)
    try:
        argnames, force_tuple = parse_argnames(ev.eval(args["argnames"]))
        values = ev.eval(args["argvalues"])
    except EvalError as exc:
        raise Unknown(str(exc)) from None
    if not isinstance(values, (list, tuple)):
        raise Unknown("argvalues are not a sequence")
    indirect: set[str] = set()
    if "indirect" in args:
        try:
            ind = ev.eval(args["indirect"])
        except EvalError as exc:
            raise Unknown(str(exc)) from None
        if ind is True:
            indirect = set(argnames)
        elif isinstance(ind, (list, tuple)):
            indirect = {x for x in ind if isinstance(x, str)}
    sets = [_parameter_set(v, force_tuple, len(argnames)) for v in values]
    ids_node = args.get("ids")
    axis = make_axis(argnames, sets, ids_node, env, escape)
    axis.indirect = indirect
    return axis


def _parameter_set(value: Any, force_tuple: bool, n: int) -> Param:
    if isinstance(value, Param):
        return value
    if force_tuple:
        return Param((value,))
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise Unknown("parameter set length does not match argnames")
        return Param(tuple(value))
    if isinstance(value, Opaque) and not value.certain:
        raise Unknown("parameter set is not known statically")
    raise Unknown("parameter set is not a tuple")


def make_axis(argnames: list[str], sets: list[Param], ids_node: ast.expr | None, env: Env, escape: bool = True) -> Axis:
    """Ids for the parameter sets of one parametrization (a mark or a fixture's params)."""
    ev = Evaluator(env)
    ids_list: list[Any] | None = None
    idfn: Lambda | Named | None = None
    if ids_node is not None:
        try:
            ids_value = ev.eval(ids_node)
        except EvalError as exc:
            raise Unknown(f"ids: {exc}") from None
        if isinstance(ids_value, (list, tuple)):
            ids_list = list(ids_value)
        elif isinstance(ids_value, (Lambda, Named)):
            idfn = ids_value
        elif ids_value is not None:
            raise Unknown("ids is neither a list nor a function")
    uncertain = False
    if not sets:
        # An empty parameter list gives one skipped case named NOTSET.
        return Axis(argnames, ["NOTSET"], [("skip",)])
    resolved: list[str] = []
    for idx, pset in enumerate(sets):
        if len(pset.values) != len(argnames):
            raise Unknown("parameter set length does not match argnames")
        if pset.id is not None:
            resolved.append(ascii_escaped(pset.id) if escape else pset.id)
        elif ids_list is not None and idx < len(ids_list) and ids_list[idx] is not None:
            given = id_from_value(ids_list[idx], escape)
            if given is None:
                raise Unknown("ids entry is not a supported type")
            resolved.append(given)
        else:
            parts = []
            for val, argname in zip(pset.values, argnames):
                part = _idval(val, argname, idx, idfn, ev, escape)
                uncertain = uncertain or is_guess(val) or isinstance(part, _Guess)
                parts.append(str(part))
            resolved.append("-".join(parts))
    return Axis(argnames, make_unique(resolved), [p.marks for p in sets], uncertain=uncertain)


class _Guess(str):
    """An id computed from a guessed value."""


def _idval(val: Any, argname: str, idx: int, idfn: Lambda | Named | None, ev: Evaluator, escape: bool) -> str:
    if idfn is not None:
        result = _call_idfn(idfn, val, ev)
        if result is not None:
            got = id_from_value(result, escape)
            if got is not None:
                return _Guess(got) if is_guess(result) else got
            if is_guess(result):
                return _Guess(f"{argname}{idx}")
    got = id_from_value(val, escape)
    if got is not None:
        return got
    return f"{argname}{idx}"


def _call_idfn(idfn: Lambda | Named, val: Any, ev: Evaluator) -> Any:
    if isinstance(idfn, Named):
        if idfn.name == "str" and not isinstance(val, (Opaque, Param)):
            return str(val) if not isinstance(val, (Named, EnumMember, Lambda)) else _unknown()
        if idfn.name == "repr" and isinstance(val, (str, int, float, bytes, bool, type(None), tuple)):
            return repr(val)
        fn = ev.env.functions.get(idfn.name)
        if fn is None:
            return _unknown()
        from tach_ls.static_calls import single_return

        body = single_return(fn)
        if body is None:
            return _unknown()
        idfn = Lambda([a.arg for a in fn.args.args], body)
    if isinstance(val, Param):
        _unknown()
    try:
        return ev.call(idfn, [val])
    except EvalError as exc:
        raise Unknown(f"ids function: {exc}") from None


def _unknown() -> Any:
    raise Unknown("ids function cannot be evaluated statically")


def make_unique(ids: list[str]) -> list[str]:
    """pytest's suffixes for duplicate ids: a, a -> a0, a1; 1, 1 -> 1_0, 1_1."""
    if len(ids) == len(set(ids)):
        return ids
    counts = Counter(ids)
    current = Counter(ids)  # the ids as they stand while renaming, like pytest's set(resolved_ids)
    suffixes: dict[str, int] = defaultdict(int)
    out = list(ids)
    for index, ident in enumerate(ids):
        if counts[ident] > 1:
            sep = "_" if ident and ident[-1].isdigit() else ""
            new = f"{ident}{sep}{suffixes[ident]}"
            while current[new] > 0:
                suffixes[ident] += 1
                new = f"{ident}{sep}{suffixes[ident]}"
            out[index] = new
            current[ident] -= 1
            current[new] += 1
            suffixes[ident] += 1
    return out


def combine(axes: list[Axis]) -> list[tuple[str, tuple[str, ...]]]:
    """The cases of a test: (id, marks) for the product of its axes, first axis outermost."""
    cases: list[tuple[str | None, tuple[str, ...]]] = [(None, ())]
    for axis in axes:
        marks = axis.marks or [()] * len(axis.ids)
        # An id may be "" (pytest.param(id="")): it still takes its place in the join.
        cases = [
            (ident if prefix is None else f"{prefix}-{ident}", pmarks + m)
            for prefix, pmarks in cases
            for ident, m in zip(axis.ids, marks)
        ]
    return [(ident or "", marks) for ident, marks in cases]
