"""Incremental re-indexing from editor buffers, and the persistent cache."""

from __future__ import annotations

import os
from pathlib import Path

from tach_ls.index import WorkspaceIndex
from tests.parity import write_tree


def ids(index: WorkspaceIndex) -> list[str]:
    return [i.nodeid for i in index.items()]


def test_update_from_buffer_follows_unsaved_text(tmp_path: Path) -> None:
    write_tree(tmp_path, {"test_a.py": "def test_one(): pass\n"})
    index = WorkspaceIndex(tmp_path, use_cache=False)
    index.build()
    fi = index.update_file("test_a.py", "\n\ndef test_one(): pass\ndef test_two(): pass\n")
    assert [(i.nodeid, i.line) for i in fi.items] == [("test_a.py::test_one", 3), ("test_a.py::test_two", 4)]
    assert ids(index) == ["test_a.py::test_one", "test_a.py::test_two"]
    assert (tmp_path / "test_a.py").read_text() == "def test_one(): pass\n", "the buffer is never written to disk"


def test_syntax_error_keeps_last_good_items(tmp_path: Path) -> None:
    """Typing half a line must not make the tree and lenses flicker away."""
    write_tree(tmp_path, {"test_a.py": "def test_one(): pass\n"})
    index = WorkspaceIndex(tmp_path, use_cache=False)
    index.build()
    fi = index.update_file("test_a.py", "def test_one(): pass\ndef test_two(:\n")
    assert fi.stale
    assert [i.nodeid for i in fi.items] == ["test_a.py::test_one"]
    assert [(e.kind, e.line) for e in fi.errors] == [("syntax", 2)]
    fixed = index.update_file("test_a.py", "def test_one(): pass\ndef test_two(): pass\n")
    assert not fixed.stale and not fixed.errors
    assert len(fixed.items) == 2


def test_new_file_and_removed_file(tmp_path: Path) -> None:
    write_tree(tmp_path, {"test_a.py": "def test_one(): pass\n"})
    index = WorkspaceIndex(tmp_path, use_cache=False)
    index.build()
    write_tree(tmp_path, {"test_b.py": "def test_b(): pass\n"})
    index.update_file(tmp_path / "test_b.py")
    assert "test_b.py::test_b" in ids(index)
    index.remove_file("test_b.py")
    assert ids(index) == ["test_a.py::test_one"]


def test_conftest_edit_changes_fixture_params(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "conftest.py": "import pytest\n@pytest.fixture(params=[1, 2])\ndef p(request): return request.param\n",
            "test_a.py": "def test_p(p): pass\n",
        },
    )
    index = WorkspaceIndex(tmp_path, use_cache=False)
    index.build()
    assert ids(index) == ["test_a.py::test_p[1]", "test_a.py::test_p[2]"]
    index.update_file("conftest.py", "import pytest\n@pytest.fixture(params=['x'])\ndef p(request): return request.param\n")
    assert index.last_changed == ["conftest.py", "test_a.py"]
    assert ids(index) == ["test_a.py::test_p[x]"]


def test_cache_second_build_parses_nothing(tmp_path: Path) -> None:
    write_tree(tmp_path, {f"test_{n}.py": f"def test_{n}(): pass\n" for n in range(5)})
    first = WorkspaceIndex(tmp_path)
    first.build()
    assert first.stats == {"parsed": 5, "cached": 0}
    second = WorkspaceIndex(tmp_path)
    second.build()
    assert second.stats == {"parsed": 0, "cached": 5}
    assert ids(first) == ids(second)
    assert (tmp_path / ".tach-ls" / ".gitignore").read_text().strip().endswith("*")


def test_cache_touch_without_change_reuses_by_hash_and_edit_reparses(tmp_path: Path) -> None:
    """Two arms: a touched-but-equal file is reused (hash), an edited file is parsed again."""
    write_tree(tmp_path, {"test_a.py": "def test_a(): pass\n", "test_b.py": "def test_b(): pass\n"})
    WorkspaceIndex(tmp_path).build()
    st = os.stat(tmp_path / "test_a.py")
    os.utime(tmp_path / "test_a.py", ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))
    (tmp_path / "test_b.py").write_text("def test_b(): pass\ndef test_b2(): pass\n")
    os.utime(tmp_path / "test_b.py", ns=(st.st_atime_ns, st.st_mtime_ns + 20_000_000))
    index = WorkspaceIndex(tmp_path)
    index.build()
    assert index.stats == {"parsed": 1, "cached": 1}
    assert ids(index) == ["test_a.py::test_a", "test_b.py::test_b", "test_b.py::test_b2"]


def test_cache_invalidated_by_conftest_dependency(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "conftest.py": "import pytest\n@pytest.fixture(params=[1])\ndef p(request): return request.param\n",
            "test_a.py": "def test_p(p): pass\n",
        },
    )
    WorkspaceIndex(tmp_path).build()
    (tmp_path / "conftest.py").write_text("import pytest\n@pytest.fixture(params=[1, 2, 3])\ndef p(request): return request.param\n")
    index = WorkspaceIndex(tmp_path)
    index.build()
    assert ids(index) == ["test_a.py::test_p[1]", "test_a.py::test_p[2]", "test_a.py::test_p[3]"]


def test_corrupt_cache_is_ignored(tmp_path: Path) -> None:
    write_tree(tmp_path, {"test_a.py": "def test_a(): pass\n"})
    WorkspaceIndex(tmp_path).build()
    (tmp_path / ".tach-ls" / "index.marshal").write_bytes(b"\x00garbage")
    index = WorkspaceIndex(tmp_path)
    index.build()
    assert ids(index) == ["test_a.py::test_a"]


def test_fixtures_markers_and_ranges_are_recorded(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "conftest.py": """
                import pytest
                @pytest.fixture(scope="session", autouse=True)
                def env(): pass
                @pytest.fixture
                def db(env): pass
            """,
            "test_a.py": """
                import pytest

                @pytest.mark.slow
                @pytest.mark.skipif(True, reason="x")
                @pytest.mark.usefixtures("env")
                def test_a(db, tmp_path):
                    assert True

                @pytest.mark.xfail
                class TestK:
                    def test_m(self):
                        pass
            """,
        },
    )
    index = WorkspaceIndex(tmp_path, use_cache=False)
    index.build()
    a, m = index.items()
    assert (a.start_line, a.line, a.end_line) == (3, 6, 7)
    assert a.markers == ["usefixtures", "skipif", "slow"]
    assert a.fixtures == ["env", "db", "tmp_path"]
    assert m.markers == ["xfail"] and m.parent == "test_a.py::TestK" and m.kind == "method"
    fixtures = {f.name: f for f in index.fixtures()}
    assert (fixtures["env"].scope, fixtures["env"].autouse, fixtures["env"].line) == ("session", True, 3)
    assert fixtures["db"].argnames == ["env"] and fixtures["db"].path == "conftest.py"


def test_helper_module_edit_adds_no_tests(tmp_path: Path) -> None:
    """A buffer of a non-test module (helpers, conftest) is never listed as tests."""
    write_tree(tmp_path, {"test_a.py": "def test_a(): pass\n", "helpers.py": "", "build/test_b.py": ""})
    index = WorkspaceIndex(tmp_path, use_cache=False)
    index.build()
    assert index.update_file("helpers.py", "def test_looks_like_one(): pass\n").items == []
    assert index.update_file("build/test_b.py", "def test_in_build(): pass\n").items == []
    assert index.update_file("test_c.py", "def test_c(): pass\n").items
    assert ids(index) == ["test_a.py::test_a", "test_c.py::test_c"]
