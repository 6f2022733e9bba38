"""Typing inside a test's body must leave the index exactly as a fresh discovery would make it.

`WorkspaceIndex.update_file` skips discovery (`buffer_edits`) when the buffer edit lay inside
the body of a test or fixture (`incremental_parse.BodyEdit`): the last index,
with the lines after the edit moved, is the new one. These tests type
random lines into bodies (and sometimes out of them: a dedented line ends the
function) and compare every field with a discovery from nothing; the two-arm
tests pin where the shortcut must not be taken.
"""

from __future__ import annotations

import random
from pathlib import Path

from tach_ls.discovery_ast import discover
from tach_ls.index import WorkspaceIndex
from tach_ls.model import FileIndex

SOURCE = '''import pytest
import unittest


def make_id(value):
    return f"v{value}"


@pytest.fixture(params=[1, 2])
def flavour(request):
    value = request.param
    return value


@pytest.mark.parametrize("n", [1, 2], ids=make_id)
def test_ids(n):
    assert n


def test_one_liner(): assert True


def test_multiline_signature(
    flavour,
): assert flavour


class Base:
    def test_inherited(self):
        total = 1
        assert total


class TestChild(Base):
    @pytest.fixture
    def local(self):
        return 2

    def test_local(self, local):
        assert local

    class TestNested:
        def test_deep(self):
            pass


class TestCase(unittest.TestCase):
    def test_unit(self):
        self.assertTrue(True)


def test_last():
    x = 1
    assert x
'''

BODY_LINES = ["x = 1\n", "assert x\n", "\n", "# note\n", "if x:\n", "pass\n", 'text = """\n', '"""\n', "def inner():\n"]


def _everything(fi: FileIndex) -> tuple[object, ...]:
    return (
        [i.to_json() for i in fi.items],
        [c.to_json() for c in fi.collectors],
        [f.to_json() for f in fi.fixtures],
        [e.kind for e in fi.errors],
    )


def _fresh(index: WorkspaceIndex, text: str) -> FileIndex:
    fi = discover("test_body.py", text.encode(), index.options)
    index._apply_selection(fi)
    return fi


def _indexed(tmp_path: Path) -> tuple[Path, WorkspaceIndex, list[int]]:
    """SOURCE in a built index, and the count of updates that took the shortcut."""
    path = tmp_path / "test_body.py"
    path.write_text(SOURCE)
    index = WorkspaceIndex(tmp_path, use_cache=False)
    index.build()
    return path, index, _count_shortcuts(index)


def _count_shortcuts(index: WorkspaceIndex) -> list[int]:
    taken = [0]
    original = index._buffers.moved

    def counting(rel: str, previous: FileIndex | None) -> FileIndex | None:
        found = original(rel, previous)
        taken[0] += found is not None
        return found

    index._buffers.moved = counting  # type: ignore[method-assign]
    return taken


def _typed(text: str, rng: random.Random) -> str:
    """`text` with one line typed, changed or deleted in (or just after) the body of a random function."""
    import ast

    lines = text.splitlines(keepends=True)
    functions = [n for n in ast.walk(ast.parse(text)) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    function = rng.choice(functions)
    first = function.body[0].lineno - 1
    pos = rng.randrange(first, (function.end_lineno or function.lineno) + 1)
    body_indent = " " * function.body[0].col_offset
    indent = rng.choice([body_indent, body_indent, body_indent + "    ", body_indent[:-4]])
    op = rng.choice(["insert", "insert", "replace", "delete"])
    if op == "insert" or pos >= len(lines):
        lines[pos:pos] = [indent + rng.choice(BODY_LINES)]
    elif op == "replace":
        lines[pos] = indent + rng.choice(BODY_LINES)
    else:
        del lines[pos]
    return "".join(lines)


def test_random_typing_in_bodies_matches_a_fresh_discovery(tmp_path: Path) -> None:
    path, index, taken = _indexed(tmp_path)
    rng = random.Random(4122026)
    text = SOURCE
    index.update_file(path, text)
    checked = 0
    for step in range(1200):
        candidate = SOURCE if step % 40 == 39 else _typed(text, rng)  # back to the start now and then: no drift
        try:
            compile(candidate, "test_body.py", "exec")
        except SyntaxError:
            continue
        text = candidate
        got = index.update_file(path, text)
        assert _everything(got) == _everything(_fresh(index, text)), text
        checked += 1
    assert checked > 400
    assert taken[0] > checked // 3, "typing inside bodies should mostly take the shortcut"


def test_a_helper_body_is_read_so_its_edit_is_discovered(tmp_path: Path) -> None:
    """Two arms: an edit in make_id's body changes the ids (no shortcut); one in a test's body changes nothing but lines."""
    path, index, taken = _indexed(tmp_path)
    index.update_file(path, SOURCE)
    helper = SOURCE.replace('    return f"v{value}"\n', '    return f"w{value}"\n')
    assert [i.params_id for i in index.update_file(path, helper).items if i.originalname == "test_ids"] == ["w1", "w2"]
    assert taken[0] == 0
    typed = helper.replace("    assert n\n", "    assert n\n    assert n > 0\n")
    got = index.update_file(path, typed)
    assert taken[0] == 1
    last = next(i for i in got.items if i.originalname == "test_last")
    assert last.line == next(i for i in _fresh(index, typed).items if i.originalname == "test_last").line


def test_a_header_edit_is_discovered(tmp_path: Path) -> None:
    """`def test_one_liner(): assert True`: its body shares the def line, so an edit there is never a body edit."""
    path = tmp_path / "test_body.py"
    path.write_text(SOURCE)
    index = WorkspaceIndex(tmp_path, use_cache=False)
    index.build()
    index.update_file(path, SOURCE)
    renamed = SOURCE.replace("def test_one_liner(): assert True", "def test_renamed(): assert True")
    assert "test_body.py::test_renamed" in {i.nodeid for i in index.update_file(path, renamed).items}
    signature = renamed.replace("    flavour,\n): assert flavour", "    flavour,\n): assert flavour; x = 2")
    got = index.update_file(path, signature)
    assert _everything(got) == _everything(_fresh(index, signature))
