"""Buffer re-indexes that reuse memoized axes and items must equal a fresh discovery.

Random line edits (inside tests, to the constants and helpers parametrize reads,
to fixtures' params, to decorators, classes and pytestmark) go through
`WorkspaceIndex.update_file(path, buffer)`, which reuses what the last
discovery of the same file computed; after each edit the items, lines
included, must be those of a discovery from nothing.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from tach_ls.discovery_ast import discover
from tach_ls.index import WorkspaceIndex
from tach_ls.model import TestItem
from tests.unit.random_edits import edit_one_line

SOURCE = '''import pytest

CASES = [1, 2, 3]
NAMES = ["a", "b"]


def make_id(value):
    return f"v{value}"


@pytest.fixture(params=["x", "y"])
def flavour(request):
    return request.param


@pytest.mark.parametrize("n", CASES)
def test_cases(n):
    assert n


@pytest.mark.parametrize("n", CASES, ids=make_id)
def test_ids(n):
    assert n


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("n", [10, 20])
def test_stacked(name, n):
    total = n
    assert total


def test_flavour(flavour):
    assert flavour


class TestGroup:
    pytestmark = pytest.mark.parametrize("k", NAMES)

    def test_k(self, k):
        assert k


def test_plain():
    value = 1
    assert value
'''

SNIPPETS = [
    "    extra = 1\n",
    "\n",
    "# a comment\n",
    "CASES = [4, 5]\n",
    "NAMES = ['c']\n",
    "def make_id(value):\n    return 'same'\n",
    "@pytest.fixture(params=[1, 2, 3])\ndef flavour(request):\n    return request.param\n",
    "@pytest.mark.parametrize('m', CASES)\n",
    "def test_new(flavour):\n    pass\n",
    "def test_helper_named(n):\n    return n\n",
    "pytestmark = pytest.mark.parametrize('p', [7, 8])\n",
]


def _items(items: list[TestItem]) -> list[tuple[object, ...]]:
    return [(i.nodeid, i.line, i.end_line, i.start_line, tuple(i.fixtures), tuple(i.markers), i.dynamic) for i in items]


def _random_edits_match(tmp_path: Path, name: str, source: str, snippets: list[str], seed: int, steps: int, view: Any) -> int:
    """Edit `source` at random through `update_file`; after each edit `view` of the index must be a fresh discovery's."""
    path = tmp_path / name
    path.write_text(source)
    index = WorkspaceIndex(tmp_path, use_cache=False)
    index.build()
    rng = random.Random(seed)
    text = source
    index.update_file(path, text)
    checked = 0
    for _step in range(steps):
        candidate = edit_one_line(text, rng, snippets)
        if candidate.count("parametrize('m'") > 3:
            continue  # stacked parametrize multiplies: a few keep the file small
        try:
            compile(candidate, name, "exec")
        except SyntaxError:
            continue
        text = candidate
        got = index.update_file(path, text)
        assert view(got) == view(discover(name, text.encode(), index.options)), text
        checked += 1
    return checked


def test_random_edits_through_the_memo_match_a_fresh_discovery(tmp_path: Path) -> None:
    checked = _random_edits_match(tmp_path, "test_memo.py", SOURCE, SNIPPETS, 20261123, 300, lambda fi: _items(fi.items))
    assert checked > 100


def test_an_unchanged_function_keeps_its_item_objects(tmp_path: Path) -> None:
    path = tmp_path / "test_memo.py"
    path.write_text(SOURCE)
    index = WorkspaceIndex(tmp_path, use_cache=False)
    index.build()
    first = index.update_file(path, SOURCE)
    edited = SOURCE.replace("    value = 1\n", "    value = 2\n")  # inside the last test: no line moves
    second = index.update_file(path, edited)
    by_id = {i.nodeid: i for i in first.items}
    module_level = [i for i in second.items if "TestGroup" not in i.nodeid]
    assert module_level and all(by_id[i.nodeid] is i for i in module_level)
    moved = index.update_file(path, "\n" + edited)  # one line down: equal items, new objects
    assert all(by_id[i.nodeid] is not i and i.line == by_id[i.nodeid].line + 1 for i in moved.items)


def test_a_change_on_disk_elsewhere_drops_the_memo(tmp_path: Path) -> None:
    (tmp_path / "cases.py").write_text("VALUES = [1, 2]\n")
    path = tmp_path / "test_imp.py"
    source = "import pytest\nfrom cases import VALUES\n\n\n@pytest.mark.parametrize('v', VALUES)\ndef test_v(v):\n    pass\n"
    path.write_text(source)
    index = WorkspaceIndex(tmp_path, use_cache=False)
    index.build()
    assert [i.params_id for i in index.update_file(path, source + "\n").items] == ["1", "2"]
    (tmp_path / "cases.py").write_text("VALUES = [1, 2, 3]\n")
    index.update_file(tmp_path / "cases.py")
    got = index.update_file(path, source)
    assert [i.params_id for i in got.items] == ["1", "2", "3"]


CLASSES = '''import pytest

KINDS = ["a", "b"]


class Base:
    @pytest.fixture
    def base_value(self):
        return 1

    def test_inherited(self, base_value):
        assert base_value


@pytest.mark.slow
class TestChild(Base):
    pytestmark = pytest.mark.parametrize("kind", KINDS)

    def test_kind(self, kind):
        assert kind

    class TestNested(Base):
        def test_deep(self):
            pass


class TestPlain:
    @pytest.fixture(params=[1, 2])
    def level(self, request):
        return request.param

    def test_level(self, level):
        assert level

    @pytest.mark.parametrize("n", [3, 4])
    def test_n(self, n):
        assert n


class TestLast(TestPlain):
    def test_more(self):
        pass
'''

CLASS_SNIPPETS = [
    "    extra = 1\n",
    "        inner = 2\n",
    "\n",
    "    # a comment\n",
    "    def test_added(self):\n        pass\n",
    "    @pytest.fixture\n    def level(self):\n        return 0\n",
    "    @pytest.mark.parametrize('m', [5, 6])\n",
    "    __test__ = False\n",
    "    def __init__(self):\n        pass\n",
    "class Base:\n    def test_replaced(self):\n        pass\n",
    "KINDS = ['c']\n",
    "class TestNew(Base):\n    pass\n",
    "        def test_nested_added(self):\n            pass\n",
]


def _all(fi: object) -> tuple[object, ...]:
    collectors = [(c.nodeid, c.line, c.end_line, c.start_line, tuple(c.markers)) for c in fi.collectors]  # type: ignore[attr-defined]
    fixtures = [(f.name, f.line, f.cls, tuple(f.params or ())) for f in fi.fixtures]  # type: ignore[attr-defined]
    return _items(fi.items), collectors, fixtures  # type: ignore[attr-defined]


def test_random_edits_in_classes_through_the_memo_match_a_fresh_discovery(tmp_path: Path) -> None:
    """Classes reused from the memo (moved, inheriting, nested) must equal a fresh discovery: items, collectors, fixtures."""
    checked = _random_edits_match(tmp_path, "test_classes.py", CLASSES, CLASS_SNIPPETS, 20261204, 600, _all)
    assert checked > 200


def test_an_edit_inside_one_class_reuses_the_other_classes(tmp_path: Path) -> None:
    """The class memo's point: an edit in TestPlain keeps TestChild's items; one above moves them, as new objects."""
    path = tmp_path / "test_classes.py"
    path.write_text(CLASSES)
    index = WorkspaceIndex(tmp_path, use_cache=False)
    index.build()
    first = {i.nodeid: i for i in index.update_file(path, CLASSES).items}
    edited = CLASSES.replace("        assert level\n", "        assert level > 0\n")
    second = index.update_file(path, edited).items
    child = [i for i in second if "TestChild" in i.nodeid]
    assert child and all(first[i.nodeid] is i for i in child)
    moved = index.update_file(path, edited.replace("KINDS = ", "\nKINDS = ")).items
    child_moved = [i for i in moved if "TestChild::test_kind" in i.nodeid]
    assert child_moved and all(i.line == first[i.nodeid].line + 1 and i is not first[i.nodeid] for i in child_moved)
    inherited = [i for i in moved if i.nodeid.endswith("TestChild::test_inherited[a]")]
    assert inherited[0].line == first[inherited[0].nodeid].line + 1  # Base moved too: its text is in the key
