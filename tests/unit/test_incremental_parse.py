"""Incremental re-parsing must give the index exactly what a full parse gives.

Random edits (insert, delete, replace lines, add decorators, indent a line
after a function) are applied to a real-looking test module; after each, the
items found from the incremental tree must equal those from a full parse,
lines included. A regression here would put lenses on the wrong lines.
"""

from __future__ import annotations

import ast
import random

from tach_ls.discovery_ast import discover
from tach_ls.incremental_parse import full, reparse
from tests.unit.random_edits import edit_one_line

SOURCE = '''"""Module docstring."""
import pytest


@pytest.fixture
def thing():
    return 1


def test_a(thing):
    assert thing == 1


@pytest.mark.parametrize("x", [1, 2, 3])
def test_b(x):
    y = x + 1
    assert y > x


class TestC:
    def test_m(self):
        pass

    @pytest.mark.skip
    def test_n(self):
        pass


class TestOuter:
    """A class with a nested class and fixtures, for edits deep inside."""

    @pytest.fixture
    def value(self):
        return 3

    @pytest.mark.parametrize("v", [1, 2])
    def test_p(self, v, value):
        assert v < value

    class TestInner:
        def test_i(self):
            text = """
not code at column zero
"""
            assert text

        def test_j(self):
            pass

    def test_after(self):
        pass


def helper():
    return 2


def test_z():
    assert helper() == 2
'''

SNIPPETS = [
    "def test_new():\n",
    "    assert True\n",
    "\n",
    "@pytest.mark.slow\n",
    "# a comment\n",
    "class TestNew:\n",
    "    def test_inner(self): pass\n",
    "x = [1,\n",
    "     2]\n",
    "    pass\n",
    "        pass\n",
    "            assert 1\n",
    "    class TestDeep:\n",
    "        def test_deep(self): pass\n",
    "    @pytest.mark.skip\n",
    '"""\n',
]


def items(tree: ast.Module, text: str) -> list[tuple[str, int, int, int]]:
    fi = discover("test_m.py", text.encode(), tree=tree)
    return [(i.nodeid, i.start_line, i.line, i.end_line) for i in fi.items] + [
        (c.nodeid, c.start_line, c.line, c.end_line) for c in fi.collectors
    ]


def positions(tree: ast.Module) -> list[tuple[str, int, int | None, int, int | None]]:
    """Where each node the index reads is (statements, decorators, a function's first statement; not deeper in functions)."""
    out = []
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        out.append((type(node).__name__, node.lineno, node.end_lineno, node.col_offset, node.end_col_offset))  # type: ignore[attr-defined]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            stack.extend(node.decorator_list)
            first = node.body[0]  # where the header ends
            out.append(("first", first.lineno, first.end_lineno, first.col_offset, first.end_col_offset))
            stack.extend(getattr(first, "decorator_list", ()))
            continue
        for name in ("body", "orelse", "finalbody", "handlers", "decorator_list"):
            stack.extend(getattr(node, name, None) or [])
    return out


def test_random_edits_match_full_parse() -> None:
    rng = random.Random(1234)
    text = SOURCE
    prev = full(text)
    incremental_used = 0
    for _step in range(1500):
        candidate = edit_one_line(text, rng, SNIPPETS, ("insert", "delete", "replace"))
        try:
            expected_tree = ast.parse(candidate)
        except SyntaxError:
            try:
                reparse(prev, candidate)
            except SyntaxError:
                continue
            raise AssertionError("incremental parse accepted a file that does not parse")
        new, was_incremental = reparse(prev, candidate)
        incremental_used += was_incremental
        assert items(new.tree, candidate) == items(expected_tree, candidate), candidate
        assert ast.dump(new.tree) == ast.dump(expected_tree), candidate
        assert positions(new.tree) == positions(expected_tree), candidate
        text, prev = candidate, new
    assert incremental_used > 100, "the incremental path should be the common case"


def test_unchanged_text_reuses_the_tree() -> None:
    prev = full(SOURCE)
    again, incremental = reparse(prev, SOURCE)
    assert incremental and again.tree is prev.tree
