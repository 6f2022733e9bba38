"""The static index's data: test items, collectors (modules, classes), fixtures, errors.

Lines here are 1-based as in Python's `ast`; the LSP layer converts to 0-based
lines and UTF-16 columns. Paths are POSIX paths relative to the rootdir, the
same as in pytest's node ids.
"""

from __future__ import annotations

import operator
from dataclasses import asdict, dataclass, field
from collections.abc import Callable
from typing import Any, Literal, TypeVar

NodeId = str
LineNo = int
RelPath = str

ItemKind = Literal["function", "method"]
CollectorKind = Literal["module", "class"]


@dataclass(slots=True)
class TestItem:
    """One runnable test, as pytest would collect it (a parametrized case is one item)."""

    __test__ = False  # not a pytest test class itself

    nodeid: NodeId
    path: RelPath
    name: str  # pytest's item name, with the parameter id: "test_x[1-a]"
    originalname: str  # the function's name: "test_x"
    kind: ItemKind
    line: LineNo  # the `def` line: where lenses go
    end_line: LineNo
    start_line: LineNo  # first decorator line: the full range starts here
    parent: NodeId  # the enclosing class or module
    markers: list[str] = field(default_factory=list)
    fixtures: list[str] = field(default_factory=list)  # requested directly (args + usefixtures)
    params_id: str | None = None  # the part between brackets, if parametrized
    dynamic: bool = False  # parameters not known statically: real collection corrects this
    deselected: bool = False  # by -k/-m in the config's addopts
    unittest: bool = False  # a unittest.TestCase method (no fixtures, no parametrize)
    defined_in: RelPath | None = None  # where the code lives, if inherited from another file

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        # Keep the JSON small: drop empty and default-valued optional fields.
        for key in ("params_id", "defined_in"):
            if data[key] is None:
                del data[key]
        for key in ("dynamic", "deselected", "unittest"):
            if not data[key]:
                del data[key]
        return data


@dataclass(slots=True)
class Collector:
    """A module or class: the inner nodes of the test tree."""

    nodeid: NodeId
    path: RelPath
    name: str
    kind: CollectorKind
    line: LineNo
    end_line: LineNo
    start_line: LineNo
    parent: NodeId | None  # None for a module
    markers: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class FixtureDef:
    """A fixture definition found in a conftest.py or a test module."""

    name: str
    path: RelPath
    line: LineNo
    scope: str = "function"
    autouse: bool = False
    argnames: list[str] = field(default_factory=list)
    params: list[str] | None = None  # ids of the params, if parametrized and known
    params_dynamic: bool = False  # parametrized, but the params are not known statically
    params_guessed: bool = False  # some param ids are guesses (values of unknown type)
    cls: str | None = None  # the class it is defined in, if any (visible to that class only)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class FileError:
    """Why a file (or part of it) could not be indexed."""

    path: RelPath
    message: str
    line: LineNo | None = None
    kind: str = "error"  # syntax, encoding, io, too-large, not-a-file, collect

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class FileIndex:
    """Everything the index knows about one file."""

    path: RelPath
    items: list[TestItem] = field(default_factory=list)
    collectors: list[Collector] = field(default_factory=list)
    fixtures: list[FixtureDef] = field(default_factory=list)
    errors: list[FileError] = field(default_factory=list)
    # Set when the file currently fails to parse: items above are the last good ones.
    stale: bool = False


# -- compact (marshal-able) forms for the index cache ------------------------------
_ITEM_FIELDS = tuple(TestItem.__dataclass_fields__)
_COLLECTOR_FIELDS = tuple(Collector.__dataclass_fields__)
_FIXTURE_FIELDS = tuple(FixtureDef.__dataclass_fields__)
_ERROR_FIELDS = tuple(FileError.__dataclass_fields__)


_item_tuple = operator.attrgetter(*_ITEM_FIELDS)
_collector_tuple = operator.attrgetter(*_COLLECTOR_FIELDS)
_fixture_tuple = operator.attrgetter(*_FIXTURE_FIELDS)
_error_tuple = operator.attrgetter(*_ERROR_FIELDS)


def moved_lines(fi: FileIndex, end: LineNo, new_end: LineNo, delta: int) -> FileIndex:
    """`fi` after an edit in (or just after) the body of a function that ended at line `end` and now ends at `new_end`.

    Lines after `end` move by `delta` (the change in line count), `end`
    itself (the function's and its enclosing classes' last line) becomes
    `new_end`; what lies before stays, and so do lines of another file
    (inherited tests' `defined_in`). Moved entries are new objects (`fi`'s
    are left as they were), copied field by field in C.
    """

    def move(line: LineNo) -> LineNo:
        return line if line < end else new_end if line == end else line + delta

    items = moved_ranges(fi.items, lambda i: i.end_line < end or i.defined_in is not None, move)
    collectors = moved_ranges(fi.collectors, lambda c: c.end_line < end, move)
    fixtures = []
    for f in fi.fixtures:
        if f.line >= end:
            f = FixtureDef(*_fixture_tuple(f))
            f.line = move(f.line)
        fixtures.append(f)
    return FileIndex(fi.path, items, collectors, fixtures, list(fi.errors), fi.stale)


_Ranged = TypeVar("_Ranged", TestItem, Collector)


def copy_of(obj: _Ranged) -> _Ranged:
    """A copy of an item or a collector, field by field in C."""
    if isinstance(obj, TestItem):
        return TestItem(*_item_tuple(obj))
    return Collector(*_collector_tuple(obj))


def moved_ranges(objects: list[_Ranged], stays: Callable[[_Ranged], bool], move: Callable[[LineNo], LineNo]) -> list[_Ranged]:
    """`objects` with each one that does not stay copied and its three lines moved."""
    out = []
    for obj in objects:
        if not stays(obj):
            obj = copy_of(obj)
            obj.line, obj.end_line, obj.start_line = move(obj.line), move(obj.end_line), move(obj.start_line)
        out.append(obj)
    return out


def file_index_to_payload(fi: FileIndex) -> tuple[Any, ...]:
    return (
        list(map(_item_tuple, fi.items)),
        list(map(_collector_tuple, fi.collectors)),
        list(map(_fixture_tuple, fi.fixtures)),
        list(map(_error_tuple, fi.errors)),
    )


def file_index_from_payload(path: RelPath, payload: tuple[Any, ...]) -> FileIndex:
    items, collectors, fixtures, errors = payload
    return FileIndex(
        path,
        [TestItem(*t) for t in items],
        [Collector(*t) for t in collectors],
        [FixtureDef(*t) for t in fixtures],
        [FileError(*t) for t in errors],
    )
