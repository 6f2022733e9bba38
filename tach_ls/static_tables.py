"""Tables of the static evaluator: operators, builtins and the few stdlib functions it may run.

Everything here is pure and bounded (the itertools helpers stop after
MAX_SEQUENCE items); values read from already-imported stdlib modules are
described, never called.
"""

from __future__ import annotations

import ast
import builtins
import itertools
import math
import operator
import posixpath
import re
import sys
import textwrap
from collections.abc import Callable
from typing import Any

from tach_ls.static_values import EvalError, Named, Opaque

MAX_SEQUENCE = 100_000


_BINOPS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.BitOr: operator.or_,
    ast.BitAnd: operator.and_,
    ast.BitXor: operator.xor,
    ast.LShift: operator.lshift,
    ast.RShift: operator.rshift,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
    ast.Not: operator.not_,
    ast.Invert: operator.invert,
}
_CMP: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}
_PURE_BUILTINS: dict[str, Callable[..., Any]] = {
    "range": range,
    "list": list,
    "tuple": tuple,
    "sorted": sorted,
    "reversed": lambda x: list(reversed(x)),
    "enumerate": lambda *a: list(enumerate(*a)),
    "zip": lambda *a: list(zip(*a)),
    "len": len,
    "str": str,
    "int": int,
    "float": float,
    "bytes": bytes,
    "bool": bool,
    "complex": complex,
    "repr": repr,
    "abs": abs,
    "min": min,
    "max": max,
    "chr": chr,
    "ord": ord,
}
def _bounded(fn: Callable[..., Any]) -> Callable[..., list[Any]]:
    def run(*args: Any) -> list[Any]:
        return list(itertools.islice(fn(*args), MAX_SEQUENCE + 1))

    return run


_MODULE_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "itertools.product": _bounded(itertools.product),
    "itertools.chain": _bounded(itertools.chain),
    "itertools.combinations": _bounded(itertools.combinations),
    "itertools.permutations": _bounded(itertools.permutations),
    "itertools.combinations_with_replacement": _bounded(itertools.combinations_with_replacement),
    "itertools.repeat": _bounded(itertools.repeat),
    "re.escape": re.escape,
    "re.compile": re.compile,  # special-cased: gives a PatternValue
    "textwrap.dedent": textwrap.dedent,
    "textwrap.indent": textwrap.indent,
    "os.path.join": posixpath.join,
    "os.path.basename": posixpath.basename,
    "os.path.dirname": posixpath.dirname,
}
_OBJECT_BUILTINS = {"dict", "set", "frozenset", "object", "bytearray", "slice"}
_MISSING = object()
_PATH_CLASSES = {"pathlib.Path", "pathlib.PurePath", "pathlib.PurePosixPath", "pathlib.PosixPath"}


def _describe_real(value: Any, dotted: str) -> Any:
    """A value read from an already-imported stdlib module, as the evaluator represents it."""
    if value is _MISSING:
        raise EvalError(f"{dotted} does not exist")
    if value is None or isinstance(value, (str, bytes, int, float, complex, bool)):
        return value
    name = getattr(value, "__name__", None)
    if dotted in _MODULE_FUNCTIONS or dotted in _PATH_CLASSES:
        return Named(name if isinstance(name, str) else dotted, qual=dotted)
    if isinstance(name, str):
        return Named(name)
    return Opaque()


_BUILTIN_NAMED = {n for n in dir(builtins) if isinstance(getattr(builtins, n, None), str) is False and isinstance(getattr(getattr(builtins, n), "__name__", None), str)}


def _looks_like_class_or_function(name: str) -> bool:
    """CamelCase or lower_case names are classes or functions; ALL_CAPS ones are constants."""
    return not name.isupper() and (name[:1].isalpha() or name.startswith("_"))


_MATH_CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau, "inf": math.inf, "nan": math.nan}
