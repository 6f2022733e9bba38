"""The values the static evaluator works with, besides plain Python literals.

`Opaque` and a guessed `Named` stand for what cannot be computed without
importing; `EvalError` says an expression cannot be evaluated at all.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any


class EvalError(Exception):
    """The expression cannot be evaluated statically."""


@dataclass(frozen=True, slots=True)
class Opaque:
    """A value of unknown type, almost always an object pytest cannot name.

    `certain` is False when it is a guess (the result of an unknown call),
    which makes the test `dynamic`.
    """

    certain: bool = True


@dataclass(frozen=True, slots=True)
class Named:
    """A class, function, module or lambda: pytest uses its `__name__` as id.

    `certain` is False for a guess (an attribute of a module we cannot read).
    """

    name: str
    certain: bool = True
    module: str | None = None  # set when this is a module: its dotted name
    enum: EnumClass | None = None  # set when this is an Enum class: its members
    qual: str | None = None  # "pathlib.Path" for a known stdlib callable


@dataclass(frozen=True, slots=True)
class PathValue:
    """`pathlib.Path(...)` of literal parts: an object (no id) whose `str()` is known."""

    text: str


@dataclass(frozen=True, slots=True)
class PatternValue:
    """`re.compile(pattern)`: pytest uses the pattern as id."""

    pattern: str | bytes


@dataclass(frozen=True, slots=True)
class EnumMember:
    """An enum member; `text` is what `str()` gives for it."""

    text: str


@dataclass(frozen=True, slots=True)
class Param:
    """`pytest.param(*values, id=..., marks=...)`."""

    values: tuple[Any, ...]
    id: Any = None
    marks: tuple[str, ...] = ()


@dataclass(slots=True)
class Lambda:
    """A lambda or a one-expression function: callable statically (for `ids=`)."""

    params: list[str]
    body: ast.expr
    name: str = "<lambda>"


@dataclass(slots=True)
class EnumClass:
    name: str
    members: dict[str, Any]
    value_str: bool  # IntEnum/StrEnum/IntFlag: str() gives the value


MAX_STR = 10_000
"""The longest string an evaluation may build."""


def concrete(value: Any) -> Any:
    """``value`` when it is a plain value an operation can use; else (only its kind is known) ``EvalError``."""
    if isinstance(value, (Opaque, Named, EnumMember, Param, Lambda, PatternValue, PathValue)):
        raise EvalError("value is not known statically")
    return value


def iterate(value: Any) -> list[Any]:
    """The items of a value known to be a sequence or set."""
    if isinstance(value, (list, tuple, str, bytes, set)):
        return list(value)
    raise EvalError("not iterable statically")


def bound(value: Any) -> Any:
    """``value``, unless it is a string longer than ``MAX_STR``."""
    if isinstance(value, (str, bytes)) and len(value) > MAX_STR:
        raise EvalError("string too long")
    return value
