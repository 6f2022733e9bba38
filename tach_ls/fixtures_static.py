"""Fixtures seen statically: definitions, what a test requests, and parametrized fixtures.

A test's fixture closure is computed as pytest's `getfixtureclosure` does
(requested names depth-first through each fixture's own arguments, following
override chains, then stably sorted by scope), and each parametrized fixture
in it becomes an `Axis` of the test's cases, unless a `parametrize` mark of
the test names the same argument.
"""

from __future__ import annotations

import ast

from tach_ls.model import FixtureDef, RelPath
from tach_ls.module_scan import FuncNode, decorator_name, is_fixture_decorator
from tach_ls.paramids import Axis, Unknown, make_axis
from tach_ls.static_eval import Env, EvalError, Evaluator, Param

FixtureLookup = dict[str, list[FixtureDef]]  # name -> definitions, farthest first, closest last

_SCOPE_ORDER = {"session": 0, "package": 1, "module": 2, "class": 3, "function": 4}
_MOCK_PATCHERS = {"patch", "mock.patch", "unittest.mock.patch", "patch.object", "mock.patch.object", "patch.multiple", "mock.patch.multiple"}


def request_names(node: FuncNode, is_method: bool) -> list[str]:
    """Argument names pytest treats as fixture requests (as `getfuncargnames`)."""
    args = node.args
    positional = [*args.posonlyargs, *args.args]
    n_defaults = len(args.defaults)
    if n_defaults:
        positional = positional[:-n_defaults]
    names = [a.arg for a in positional]
    names += [a.arg for a, default in zip(args.kwonlyargs, args.kw_defaults) if default is None]
    if is_method and names and not any(decorator_name(d) == "staticmethod" for d in node.decorator_list):
        names = names[1:]
    patched = sum(1 for d in node.decorator_list if _injects_mock(d))
    return names[patched:]


def _injects_mock(dec: ast.expr) -> bool:
    if not isinstance(dec, ast.Call) or decorator_name(dec) not in _MOCK_PATCHERS:
        return False
    name = decorator_name(dec)
    if name.endswith("multiple"):
        return False
    positional_new = 2 if name.endswith("object") else 1
    return not any(k.arg == "new" for k in dec.keywords) and len(dec.args) <= positional_new


def fixture_from_def(node: FuncNode, path: RelPath, env: Env, cls: str | None, escape: bool = True) -> FixtureDef:
    """Read `@pytest.fixture(...)`'s arguments from a definition."""
    dec = next(d for d in node.decorator_list if is_fixture_decorator(d))
    fx = FixtureDef(node.name, path, node.lineno, cls=cls)
    fx.argnames = request_names(node, cls is not None)
    if not isinstance(dec, ast.Call):
        return fx
    kwargs = {k.arg: k.value for k in dec.keywords if k.arg}
    if dec.args and not kwargs.get("scope"):
        first = dec.args[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            kwargs["scope"] = first
    ev = Evaluator(env)
    for key in ("scope", "autouse", "name"):
        if key in kwargs:
            try:
                value = ev.eval(kwargs[key])
            except EvalError:
                continue
            if key == "scope" and isinstance(value, str):
                fx.scope = value
            elif key == "autouse":
                fx.autouse = bool(value)
            elif key == "name" and isinstance(value, str):
                fx.name = value
    if "params" in kwargs:
        try:
            values = ev.eval(kwargs["params"])
            if not isinstance(values, (list, tuple)):
                raise Unknown("params is not a sequence")
            sets = [v if isinstance(v, Param) else Param((v,)) for v in values]
            axis = make_axis([fx.name], sets, kwargs.get("ids"), env, escape)
            fx.params_guessed = axis.uncertain
            fx.params = axis.ids
        except (EvalError, Unknown):
            fx.params_dynamic = True
    return fx


def _scope_rank(name: str, lookup: FixtureLookup) -> int:
    defs = lookup.get(name)
    if not defs:
        return _SCOPE_ORDER["function"]
    return _SCOPE_ORDER.get(defs[-1].scope, 4)


def closure(initial: list[str], lookup: FixtureLookup, ignore: set[str]) -> list[str]:
    """pytest's fixture closure order for a test."""
    names: list[str] = []
    index: dict[str, int] = {}

    def visit(name: str, depth: int) -> None:
        if depth > 100 or index.get(name) == -1:
            return
        if name not in names:
            names.append(name)
        if name in ignore:
            return
        defs = lookup.get(name)
        if not defs:
            return
        i = index.get(name, -1)
        if -i > len(defs):
            return
        fx = defs[i]
        index[name] = i - 1
        for dep in fx.argnames:
            visit(dep, depth + 1)
        index[name] = i

    for name in initial:
        visit(name, 0)
    return sorted(names, key=lambda n: _scope_rank(n, lookup))


def autouse_names(lookup: FixtureLookup) -> list[str]:
    return [name for name, defs in lookup.items() if defs and defs[-1].autouse]


def fixture_axes(requested: list[str], lookup: FixtureLookup, direct: set[str], parametrized: set[str], escape: bool = True) -> list[Axis]:
    """Axes contributed by parametrized fixtures in the closure of `requested`."""
    initial = list(dict.fromkeys(autouse_names(lookup) + requested))
    axes: list[Axis] = []
    for name in closure(initial, lookup, direct):
        if name in parametrized:
            continue
        for fx in reversed(lookup.get(name, [])):
            if fx.params_dynamic:
                raise Unknown(f"fixture {name} has params not known statically")
            if fx.params is not None:
                axes.append(Axis([name], list(fx.params), [()] * len(fx.params), {name}, fx.params_guessed))
                break
            if name not in fx.argnames:
                break
    return axes
