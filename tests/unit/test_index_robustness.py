"""Bad input never crashes or hangs the indexer, and every other file still indexes.

Each case asserts the per-file error (path, kind, line where there is one)
and that a good file beside it is still found.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tach_ls.index import WorkspaceIndex
from tests.parity import write_tree

GOOD = {"test_good.py": "def test_good(): pass\n"}


def build(root: Path) -> WorkspaceIndex:
    index = WorkspaceIndex(root, [], use_cache=False)
    index.build()
    assert "test_good.py::test_good" in [i.nodeid for i in index.items()], "a bad file must not hide the others"
    return index


def errors_for(index: WorkspaceIndex, rel: str) -> list[tuple[str, int | None]]:
    return [(e.kind, e.line) for e in index.errors() if e.path == rel]


def test_syntax_error_reports_line(tmp_path: Path) -> None:
    write_tree(tmp_path, {**GOOD, "test_bad.py": "def test_a():\n    pass\n\ndef test_b(:\n    pass\n"})
    index = build(tmp_path)
    assert errors_for(index, "test_bad.py") == [("syntax", 4)]


def test_non_utf8_bytes(tmp_path: Path) -> None:
    write_tree(tmp_path, {**GOOD, "test_bytes.py": b"def test_x():\n    s = '\xff\xfe'\n"})
    index = build(tmp_path)
    [(kind, _line)] = errors_for(index, "test_bytes.py")
    assert kind in ("syntax", "encoding")


def test_null_bytes(tmp_path: Path) -> None:
    write_tree(tmp_path, {**GOOD, "test_null.py": b"def test_x(): pass\n\x00\n"})
    index = build(tmp_path)
    assert len(errors_for(index, "test_null.py")) == 1


def test_bad_encoding_cookie(tmp_path: Path) -> None:
    write_tree(tmp_path, {**GOOD, "test_cookie.py": b"# -*- coding: no-such-codec -*-\ndef test_x(): pass\n"})
    index = build(tmp_path)
    assert len(errors_for(index, "test_cookie.py")) == 1


def test_huge_file_is_refused_quickly(tmp_path: Path) -> None:
    """A 50 MB file gets a 'too large' error instead of minutes of parsing and gigabytes of AST."""
    big = tmp_path / "test_big.py"
    with open(big, "wb") as fh:
        line = b"x = 1  # " + b"a" * 90 + b"\n"
        fh.write(line * (50 * 1024 * 1024 // len(line)))
    write_tree(tmp_path, GOOD)
    index = build(tmp_path)
    assert errors_for(index, "test_big.py") == [("too-large", None)]


def test_fifo_named_like_a_test_does_not_block(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "test_fifo.py")
    write_tree(tmp_path, GOOD)
    index = build(tmp_path)
    assert errors_for(index, "test_fifo.py") == [("not-a-file", None)]


def test_directory_named_like_a_test_module(tmp_path: Path) -> None:
    write_tree(tmp_path, {**GOOD, "test_dir.py/test_inner.py": "def test_inner(): pass\n"})
    index = build(tmp_path)
    assert "test_dir.py/test_inner.py::test_inner" in [i.nodeid for i in index.items()]
    assert errors_for(index, "test_dir.py") == [("not-a-file", None)]


def test_symlink_loop(tmp_path: Path) -> None:
    write_tree(tmp_path, {**GOOD, "sub/test_s.py": "def test_s(): pass\n"})
    os.symlink(tmp_path / "sub", tmp_path / "sub" / "loop")
    index = build(tmp_path)
    assert "sub/test_s.py::test_s" in [i.nodeid for i in index.items()]
    assert [k for k, _ in errors_for(index, "sub/loop")] == ["symlink-loop"]


def test_broken_symlink(tmp_path: Path) -> None:
    write_tree(tmp_path, GOOD)
    os.symlink(tmp_path / "missing.py", tmp_path / "test_dangling.py")
    index = build(tmp_path)
    assert errors_for(index, "test_dangling.py") == [("io", None)]


def test_deeply_nested_expression(tmp_path: Path) -> None:
    write_tree(tmp_path, {**GOOD, "test_deep.py": "x = " + "(" * 300 + "1" + ")" * 300 + "\ndef test_d(): pass\n"})
    index = build(tmp_path)
    # Python 3.11 refuses this nesting ("too many nested parentheses"); either way no crash.
    assert len(errors_for(index, "test_deep.py")) <= 1


def test_huge_parametrize_is_bounded(tmp_path: Path) -> None:
    """A parametrize that would expand to millions of cases is not expanded: one dynamic item."""
    write_tree(tmp_path, {**GOOD, "test_many.py": "import pytest\n@pytest.mark.parametrize('i', range(10**9))\ndef test_m(i): pass\n"})
    index = build(tmp_path)
    [item] = [i for i in index.items() if i.path == "test_many.py"]
    assert item.dynamic and item.nodeid == "test_many.py::test_m"


def test_a_class_nesting_a_subclass_of_itself_is_collected_once(tmp_path: Path) -> None:
    """`class Base:` holding `class TestIn(Base)`: by name, Base's nested class inherits Base, which holds it again.

    The regression: collection followed the cycle and doubled the items at
    every level until memory ran out (found by the memo's random edits).
    """
    source = textwrap.dedent(
        """
        import pytest

        class Base:
            def test_base(self):
                pass

            @pytest.mark.parametrize("m", [5, 6])
            class TestNested(Base):
                def test_deep(self):
                    pass

        class TestChild(Base):
            pass
        """
    )
    write_tree(tmp_path, {**GOOD, "test_cycle.py": source})
    index = build(tmp_path)
    ids = sorted(i.nodeid for i in index.items() if i.path == "test_cycle.py")
    assert "test_cycle.py::TestChild::test_base" in ids and len(ids) < 20, ids


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another user for the unreadable-file case")
def test_unreadable_file_as_unprivileged_user(tmp_path: Path) -> None:
    """Root reads everything, so this case runs the indexer as `nobody` in a child process."""
    write_tree(tmp_path, {**GOOD, "test_secret.py": "def test_s(): pass\n"})
    os.chmod(tmp_path / "test_secret.py", 0)
    os.chmod(tmp_path, 0o755)
    for parent in tmp_path.parents:
        os.chmod(parent, os.stat(parent).st_mode | 0o005)
    code = textwrap.dedent(
        f"""
        import os, json, sys, glob, pathlib
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from tach_ls.index import WorkspaceIndex  # import before dropping privileges: /root is private
        os.setgid(65534); os.setuid(65534)
        ix = WorkspaceIndex(__import__("pathlib").Path({str(tmp_path)!r}), [], use_cache=False)
        ix.build()
        print(json.dumps({{"items": [i.nodeid for i in ix.items()], "errors": [[e.path, e.kind] for e in ix.errors()]}}))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    import json

    out = json.loads(proc.stdout)
    assert out["items"] == ["test_good.py::test_good"]
    assert ["test_secret.py", "io"] in out["errors"]


def test_generator_test_and_odd_decorators_do_not_crash(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            **GOOD,
            "test_odd.py": """
                import pytest
                @pytest.mark.parametrize(*ARGS)
                def test_star(a): pass
                @pytest.mark.parametrize("a", [1], ids=unknown_fn)
                def test_unknown_ids(a): pass
                @pytest.mark.parametrize("a", [1, 2], **KW)
                def test_kw(a): pass
                @pytest.mark.parametrize("a", IMPORTED)
                def test_imported_values(a): pass
                class TestX(SomeUnknownBase):
                    def test_m(self): pass
            """,
        },
    )
    index = build(tmp_path)
    by_id = {i.nodeid: i for i in index.items()}
    for name in ("test_star", "test_unknown_ids", "test_kw", "test_imported_values"):
        assert by_id[f"test_odd.py::{name}"].dynamic
    assert by_id["test_odd.py::TestX::test_m"].dynamic  # an unknown base may add tests
