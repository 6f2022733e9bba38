"""Reuse a file's discovery across re-indexes of its buffer while what it read is unchanged.

Re-indexing a buffer after a keystroke re-runs discovery on the whole file,
though an edit inside one test changes nothing about the others. Two results
are remembered, both under the **module text**: the text of every module-level
statement a test's items can depend on, which is all of them except the bodies
of test functions (a test function counts by its name, and by its header if it
is a fixture; any other function, which a parametrize expression may call,
counts whole; a class by its header and, recursively, its statements).

- a parametrize mark's axis, under the mark's own text (its lines and columns);
- a test function's or method's items, under its header text (decorators and
  signature) and, for a method, its name, class and parent id (the module text
  holds every class's shape: headers, fixtures, helpers, marks). Reused items
  keep their objects when the function did not move, else they are copied
  with the new lines;
- a module-level class's items, collectors and fixtures, under its whole text
  and the text and place of every other class of this file its collection read
  (its bases, its nested classes' bases). Most test files are a few large
  classes, and an edit inside one leaves the others' results valid: they are
  reused, moved with the class when an edit above shifted it.

Keys are text, so they survive the line shifts of an edit above. A mark from
another file (an imported base class, an imported test) is never memoized: its
lines are not this file's. Names imported from other workspace modules are
outside the keys, which is why the index keeps a memo only while the same file
is edited and drops it on any other change.
"""

from __future__ import annotations

import ast
import dataclasses
import itertools
from collections.abc import Callable

from tach_ls.fingerprints import first_line
from tach_ls.model import Collector, FileIndex, FixtureDef, TestItem, copy_of, moved_ranges
from tach_ls.module_scan import is_fixture_decorator
from tach_ls.paramids import Axis, Unknown

_FUNCTION = (ast.FunctionDef, ast.AsyncFunctionDef)
ClassNode = Callable[[str], "ast.ClassDef | None"]
"""A module-level class of the file being discovered, by name."""


@dataclasses.dataclass(frozen=True)
class _ClassEntry:
    read: tuple[tuple[str, str | None, int], ...]  # (name, text, first line) of the other classes it read
    foreign: bool  # it read a class of another file: its results hold that file's lines, which never move
    start: int
    end: int
    items: list[TestItem]
    collectors: list[Collector]
    fixtures: list[FixtureDef]
    inner: tuple[tuple[object, ...], ...]  # the keys its collection used (methods, axes): kept while it is reused


class DiscoveryMemo:
    """What one file's last discovery computed, and the buffer lines of the discovery running now."""

    def __init__(self) -> None:
        self._entries: dict[tuple[object, ...], object] = {}
        self._used: dict[tuple[object, ...], object] = {}
        self._lines: list[str] = []
        self._tree: ast.Module | None = None
        self._is_test: Callable[[str], bool] = lambda name: False
        self._env: int | None = None
        self.foreign_lines = False

    def begin(self, lines: list[str], tree: ast.Module, is_test_name: Callable[[str], bool]) -> None:
        """Start a discovery of `tree`, parsed from `lines`."""
        self._lines, self._tree, self._is_test, self._env = lines, tree, is_test_name, None
        self.foreign_lines = False
        """Set by the discovery when a class of another file was read: some results then hold that file's lines."""

    def end(self) -> None:
        """Keep only what the last discovery used: what was deleted since is forgotten."""
        self._entries, self._used = self._used, {}
        self._lines, self._tree = [], None

    def axis(self, mark: ast.Call, escape: bool, evaluate: Callable[[], Axis]) -> Axis:
        """`evaluate()`, or what it returned (or raised) for the same mark text and module text."""
        key = ("axis", self._text(mark.lineno, mark.end_lineno or mark.lineno), mark.col_offset, mark.end_col_offset, self._module_key(), escape)
        found = self._entries.get(key)
        if found is None:
            try:
                found = evaluate()
            except Unknown as exc:
                found = exc
        self._used[key] = found
        if isinstance(found, Unknown):
            raise found
        assert isinstance(found, Axis)
        return found

    def items(self, node: ast.FunctionDef | ast.AsyncFunctionDef, extra: tuple[object, ...], collect: Callable[[], list[TestItem]]) -> list[TestItem]:
        """`collect()`'s items for a test function of this file, or the last ones for the same header, `extra` and module text."""
        key = ("items", self._text(first_line(node), _header_end(node)), extra, self._module_key())
        found = self._entries.get(key)
        if found is None:
            found = collect()
        else:
            found = _moved(found, node)  # type: ignore[arg-type]
        self._used[key] = found
        return found

    def classes(self, node: ast.ClassDef, extra: object, out: FileIndex, class_node: ClassNode, collect: Callable[[], set[str]]) -> None:
        """Add to `out` what `collect()` adds for a module-level class, or what it added for the same texts."""
        start, end = first_line(node), node.end_lineno or node.lineno
        key = ("class", self._text(start, end), extra, self._module_key())
        found = self._entries.get(key)
        entry: _ClassEntry | None = None
        if isinstance(found, _ClassEntry) and found.read == self._read(found.read, class_node) and (start == found.start or not found.foreign):
            entry = _class_moved(found, start, end)
            self.foreign_lines = self.foreign_lines or found.foreign
            out.items.extend(entry.items)
            out.collectors.extend(entry.collectors)
            out.fixtures.extend(entry.fixtures)
            for inner in entry.inner:  # still valid for when this class changes: keep them
                if inner in self._entries:
                    self._used[inner] = self._entries[inner]
        else:
            marks = len(out.items), len(out.collectors), len(out.fixtures)
            used_before = len(self._used)
            names = collect()
            inner_keys = tuple(itertools.islice(self._used, used_before, None))
            foreign = "" in names
            names.discard("")
            names.discard(node.name)
            read = self._read(tuple((name, None, 0) for name in sorted(names)), class_node)
            entry = _ClassEntry(read, foreign, start, end, out.items[marks[0] :], out.collectors[marks[1] :], out.fixtures[marks[2] :], inner_keys)
        self._used[key] = entry

    def _read(self, read: tuple[tuple[str, str | None, int], ...], class_node: ClassNode) -> tuple[tuple[str, str | None, int], ...]:
        """The current (name, text, first line) of the classes named in `read`."""
        out: list[tuple[str, str | None, int]] = []
        for name, _text, _line in read:
            node = class_node(name)
            if node is None:
                out.append((name, None, 0))
            else:
                first = first_line(node)
                out.append((name, self._text(first, node.end_lineno or node.lineno), first))
        return tuple(out)

    def _text(self, first: int, last: int) -> str:
        return "".join(self._lines[first - 1 : last])

    def _module_key(self) -> int:
        if self._env is None:
            parts: list[str] = []
            self._collect(self._tree.body if self._tree else [], parts)
            self._env = hash("\x00".join(parts))
        return self._env

    def _collect(self, stmts: list[ast.stmt], out: list[str]) -> None:
        for stmt in stmts:
            if isinstance(stmt, _FUNCTION) and self._is_test(stmt.name):
                fixture = any(is_fixture_decorator(d) for d in stmt.decorator_list)
                out.append(self._text(first_line(stmt), _header_end(stmt)) if fixture else f"def {stmt.name}")
            elif isinstance(stmt, ast.ClassDef):
                out.append(self._text(first_line(stmt), _header_end(stmt)))
                self._collect(stmt.body, out)
                out.append("end class")
            else:
                out.append(self._text(first_line(stmt), stmt.end_lineno or stmt.lineno))


def _header_end(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> int:
    """The last line of a definition's decorators and signature (its first body line, for a one-liner).

    Read from the first body statement, not from the bases or arguments: an
    incremental parse moves statements, not the expressions inside them.
    """
    body_first = first_line(node.body[0])
    return max(node.lineno, body_first - 1)


def _moved(items: list[TestItem], node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[TestItem]:
    """The same items at the function's lines now: the very objects if it did not move, else copies."""
    line, end, start = node.lineno, node.end_lineno or node.lineno, first_line(node)
    if not items or (items[0].line, items[0].end_line, items[0].start_line) == (line, end, start):
        return items
    out = []
    for item in items:
        copy = copy_of(item)
        copy.line, copy.end_line, copy.start_line = line, end, start
        out.append(copy)
    return out


def _class_moved(entry: _ClassEntry, start: int, end: int) -> _ClassEntry:
    """The entry with its class at `start`: what lies inside the class moves with it, inherited lines elsewhere stay."""
    delta = start - entry.start
    if not delta:
        return entry
    lo, hi = entry.start, entry.end

    def inside(line: int) -> bool:
        return lo <= line <= hi

    def shift(line: int) -> int:
        return line + delta

    items = moved_ranges(entry.items, lambda i: i.defined_in is not None or not inside(i.line), shift)
    collectors = moved_ranges(entry.collectors, lambda c: not inside(c.line), shift)
    fixtures = [dataclasses.replace(f, line=f.line + delta) if inside(f.line) else f for f in entry.fixtures]
    return dataclasses.replace(entry, start=start, end=end, items=items, collectors=collectors, fixtures=fixtures)
