"""Re-parse an edited buffer by re-parsing only the statements the edit touched.

Parsing a 2,000-line test module costs ~15-20 ms here, most of a re-index. An
edit usually changes a few lines inside one function, so this keeps the last
tree and text, finds the changed line range (common prefix and suffix), and
re-parses the smallest run of whole statements that covers it, widened by one
statement on each side (a new decorator line belongs to the next statement;
an indented line appended after a function belongs to it). An edit inside a
class body descends into it, so a method is re-parsed, not its whole class.
Statements after the edit keep their nodes, shifted by the change in line
count. Anything unusual (no previous tree, a chunk that does not parse, an
indented chunk start) falls back to a full parse, which also produces the
syntax error to report.
"""

from __future__ import annotations

import ast
import itertools
import operator
from collections.abc import Iterator
from dataclasses import dataclass

from tach_ls.fingerprints import first_line


@dataclass(frozen=True)
class BodyEdit:
    """The edit lay inside one function's body and left every other statement as it was.

    Whatever the index read from the previous tree is still true, but for
    lines: those after `end` (the function's last line before the edit) move
    by `delta`, and `end` itself becomes `new_end`; if the function is one
    whose body the index never reads (a test, a fixture), the previous index,
    so moved, is the new one.
    `function` is None when the text did not change at all.
    """

    function: ast.FunctionDef | ast.AsyncFunctionDef | None
    end: int
    new_end: int  # the function's last line now: lines at `end` (its end, its classes') go there
    delta: int


@dataclass
class Parsed:
    lines: list[str]
    tree: ast.Module
    body_edit: BodyEdit | None = None


def _span(stmt: ast.stmt) -> tuple[int, int]:
    """0-based first and last line of a statement, decorators included."""
    start = stmt.lineno
    for dec in getattr(stmt, "decorator_list", ()):
        start = min(start, dec.lineno)
    return start - 1, (stmt.end_lineno or stmt.lineno) - 1


_FUNCTION = (ast.FunctionDef, ast.AsyncFunctionDef)
_BLOCKS = ("body", "orelse", "finalbody", "handlers", "decorator_list", "cases")


def shift(stmts: list[ast.stmt], delta: int) -> None:
    """Move statements (and the nested ones the index reads) by `delta` lines.

    A function's body is not moved, but for its first statement's own lines
    (where the header ends, which discovery_memo reads): the index reads where
    a function and its decorators are, never where the statements inside it
    are, and a long file has most of its statements there (moving them was
    most of a re-parse).
    """
    if not delta:
        return
    stack: list[ast.AST] = list(stmts)
    while stack:
        node = stack.pop()
        node.lineno += delta  # type: ignore[attr-defined]
        if getattr(node, "end_lineno", None) is not None:
            node.end_lineno += delta  # type: ignore[attr-defined]
        if isinstance(node, _FUNCTION):
            stack.extend(node.decorator_list)
            first = node.body[0]
            first.lineno += delta
            first.end_lineno = (first.end_lineno or first.lineno) + delta
            stack.extend(getattr(first, "decorator_list", ()))
            continue
        for name in _BLOCKS:
            children = getattr(node, name, None)
            if children:
                stack.extend(children)


def source_lines(text: str) -> list[str]:
    """The lines as the parser numbers them (ends kept): split at \\n only.

    `str.splitlines` also splits at form feeds and other separators Python
    source treats as whitespace, which would put every later line off by one.
    """
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def full(text: str) -> Parsed:
    return Parsed(source_lines(text), ast.parse(text))


def reparse(prev: Parsed | None, text: str) -> tuple[Parsed, bool]:
    """(the new parse, whether it was incremental). Raises SyntaxError like ast.parse."""
    if prev is None or not prev.tree.body:
        return full(text), False
    if "\r" in text.replace("\r\n", ""):
        return full(text), False  # a bare CR ends a line for the parser: no line list to diff
    old, new = prev.lines, source_lines(text)
    limit = min(len(old), len(new))
    # Common prefix and suffix in whole lines; `map` compares in C (a Python loop was most of a re-parse).
    a = _first_true(map(operator.ne, old, new), limit)
    if a == len(old) == len(new):
        return Parsed(new, prev.tree, BodyEdit(None, 0, 0, 0)), True
    suffix = _first_true(map(operator.ne, reversed(old), reversed(new)), limit - a)
    edit = _Edit(old, new, a, len(old) - suffix, len(new) - len(old))
    body = _splice(prev.tree.body, edit, [])
    if body is None:
        return full(text), False
    return Parsed(new, ast.Module(body=body, type_ignores=[]), edit.body_edit), True


@dataclass
class _Edit:
    old: list[str]  # the previous lines
    new: list[str]  # the new lines
    a: int  # changed old lines: [a, b), 0-based
    b: int
    delta: int  # change in line count
    body_edit: BodyEdit | None = None  # set by the splice that finds the edit inside one function's body


def _splice(body: list[ast.stmt], edit: _Edit, indents: list[str]) -> list[ast.stmt] | None:
    """`body` with the statements the edit touched re-parsed, or None if that chunk does not parse.

    `indents` holds the indentation of each class header `body` is nested in.
    An edit inside one class's body re-parses only the statements around it in
    that body (a class of 500 lines costs 5 ms to parse whole); if that fails
    (the edit changed the class's structure) the whole class is re-parsed.
    Nothing is mutated unless the splice succeeds.
    """
    a, b, delta = edit.a, edit.b, edit.delta
    spans = [_span(s) for s in body]
    touched = [i for i, (s, e) in enumerate(spans) if s < max(b, a + 1) and e >= a]
    before = [i for i, (s, e) in enumerate(spans) if e < a]
    # The one statement the edit may lie in: the one it touches, or the one it follows (lines typed after a
    # function's last line may be its body, which only the re-parse can tell).
    candidate = (touched[0] if len(touched) == 1 else None) if touched else (before[-1] if before else None)
    if candidate is not None:
        inner = _splice_class(body[candidate], edit, indents)
        if inner is not None:
            tail = body[candidate + 1 :]
            shift(tail, delta)
            return [*body[:candidate], inner, *tail]
        edit.body_edit = None
    if touched:
        first, last = max(touched[0] - 1, 0), min(touched[-1] + 1, len(body) - 1)
    else:  # between statements: take the neighbours on both sides
        after = [i for i, (s, e) in enumerate(spans) if s >= a]
        first = before[-1] if before else (after[0] if after else 0)
        last = after[0] if after else (before[-1] if before else 0)
    rs = min(spans[first][0], a)
    re_ = max(spans[last][1], b - 1)
    chunk = _parse_chunk(edit.new[rs : re_ + delta + 1], rs, indents, body[0].col_offset)
    if chunk is None:
        return None
    if candidate is not None:
        edit.body_edit = _body_edit(body[first : last + 1], chunk, candidate - first, edit)
    tail = body[last + 1 :]
    shift(tail, delta)
    return [*body[:first], *chunk, *tail]


def _body_edit(old: list[ast.stmt], new: list[ast.stmt], i: int, edit: _Edit) -> BodyEdit | None:
    """A BodyEdit if old[i] is a function whose body the edit is in or after, and `new` is `old` but for that body.

    The caller guarantees the edit overlaps no other statement of `old`; the
    re-parse tells whether lines typed after the function joined its body.
    """
    function, after = old[i], new[i] if len(new) == len(old) else None
    if not isinstance(function, _FUNCTION) or type(after) is not type(function):
        return None
    assert isinstance(after, _FUNCTION)
    if edit.a < first_line(function.body[0]) - 1 or not _starts_its_line(function.body[0], edit.old):
        return None  # the header, or a body sharing the header's last line
    if after.name != function.name or after.lineno != function.lineno:
        return None
    for j, (o, n) in enumerate(zip(old, new)):
        moved = edit.delta if j > i else 0
        (o_start, o_end), (n_start, n_end) = _span(o), _span(n)  # decorators included: a typed `@...` joins the next def
        if j != i and (n_start != o_start + moved or n_end != o_end + moved or n.lineno != o.lineno + moved):
            return None
    return BodyEdit(after, function.end_lineno or function.lineno, after.end_lineno or after.lineno, edit.delta)


def _starts_its_line(stmt: ast.stmt, lines: list[str]) -> bool:
    """Nothing but indentation before `stmt` on its first line (not `def f(): stmt`, not `b): stmt`)."""
    first = first_line(stmt)
    if first > len(lines):
        return False
    line = lines[first - 1]
    decorators = getattr(stmt, "decorator_list", None)
    col = decorators[0].col_offset - 1 if decorators else stmt.col_offset
    return col == len(line) - len(line.lstrip(" \t\f"))


def _splice_class(node: ast.stmt, edit: _Edit, indents: list[str]) -> ast.ClassDef | None:
    """A copy of class `node` with the edit spliced into its body, if the edit lies inside (or after) that body.

    The caller guarantees the edit overlaps no other statement; lines typed
    after the class's last statement belong to it only if they parse inside
    it (`_parse_chunk` checks).
    """
    if not isinstance(node, ast.ClassDef) or not node.body:
        return None
    if edit.a < _span(node.body[0])[0] or not _starts_its_line(node.body[0], edit.old):
        return None  # the header (or `class A: x = 1`, a body sharing the header's line)
    header = edit.new[node.lineno - 1]
    body = _splice(node.body, edit, [*indents, header[: len(header) - len(header.lstrip(" \t"))]])
    if body is None:
        return None
    copy = ast.ClassDef(**{f: getattr(node, f) for f in node._fields})
    copy.lineno, copy.col_offset, copy.end_col_offset = node.lineno, node.col_offset, node.end_col_offset
    copy.body = body
    copy.end_lineno, copy.end_col_offset = body[-1].end_lineno, body[-1].end_col_offset
    return copy


def _parse_chunk(lines: list[str], first: int, indents: list[str], column: int) -> list[ast.stmt] | None:
    """The statements of `lines` (which start at 0-based line `first`), at their own lines and columns.

    A nested chunk is parsed under one `if 1:` per enclosing class, each at
    that class's indentation, after blank lines that put the chunk's first line
    where it is in the file: no line or column needs moving afterwards. It
    counts only if every statement stays inside the innermost `if` (a line
    dedented out of the class would not) at the block's `column`: a chunk
    that re-indents its block (lines typed before a class's first statement,
    at another indentation) changes what the statements after it belong to.
    """
    if not lines or lines[0][:1] in (" ", "\t") and not indents:
        return None
    if len(indents) > first:
        return None
    prefix = "\n" * (first - len(indents)) + "".join(f"{indent}if 1:\n" for indent in indents)
    try:
        tree = ast.parse(prefix + "".join(lines))
    except SyntaxError:
        return None
    body: list[ast.stmt] = tree.body
    for _ in indents:
        if len(body) != 1 or not isinstance(body[0], ast.If) or body[0].orelse:
            return None
        body = body[0].body
    if any(stmt.col_offset != column for stmt in body):
        return None
    return body


def _first_true(flags: Iterator[bool], limit: int) -> int:
    """The index of the first true flag before `limit`, else `limit` (C speed: no Python loop)."""
    try:
        return list(itertools.islice(flags, limit)).index(True)
    except ValueError:
        return limit
