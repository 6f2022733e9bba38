"""`tach-ls list` as a user runs it: a real process, its output, exit codes and caches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.parity import write_tree

ROOT = Path(__file__).resolve().parents[2]


def tach(args: list[str], cwd: Path, cache_home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", "import sys; from tach_ls.cli import main; sys.exit(main())", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    write_tree(
        root,
        {
            "pyproject.toml": "[tool.pytest.ini_options]\ntestpaths = ['tests']\naddopts = \"-m 'not slow'\"\n",
            "tests/test_a.py": "import pytest\ndef test_one(): pass\n@pytest.mark.slow\ndef test_slow(): pass\n",
            "tests/test_b.py": "import pytest\n@pytest.mark.parametrize('x', [1, 2])\ndef test_p(x): pass\n",
        },
    )
    return root


def test_plain_output_is_pytest_node_ids(project: Path, tmp_path: Path) -> None:
    proc = tach(["list"], project, tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["tests/test_a.py::test_one", "tests/test_b.py::test_p[1]", "tests/test_b.py::test_p[2]"]


def test_json_output_and_all_flag(project: Path, tmp_path: Path) -> None:
    doc = json.loads(tach(["list", "--json", "--all"], project, tmp_path / "cache").stdout)
    by_id = {t["nodeid"]: t for t in doc["tests"]}
    assert by_id["tests/test_a.py::test_slow"]["deselected"] is True
    first = by_id["tests/test_a.py::test_one"]
    assert {k: first[k] for k in ("path", "line", "end_line", "kind")} == {"path": "tests/test_a.py", "line": 2, "end_line": 2, "kind": "function"}
    assert doc["errors"] == [] and doc["rootdir"] == str(project)


def test_exit_codes_for_errors_and_empty(project: Path, tmp_path: Path) -> None:
    (project / "tests" / "test_bad.py").write_text("def test_x(:\n")
    proc = tach(["list"], project, tmp_path / "cache")
    assert proc.returncode == 2
    assert "tests/test_bad.py:1: SyntaxError" in proc.stderr
    assert "tests/test_a.py::test_one" in proc.stdout, "the other files are still listed"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert tach(["list"], empty, tmp_path / "cache").returncode == 5


def test_bad_config_is_a_usage_error(tmp_path: Path) -> None:
    write_tree(tmp_path / "p", {"pytest.ini": "[pytest\nbroken", "test_a.py": "def test_a(): pass\n"})
    proc = tach(["list"], tmp_path / "p", tmp_path / "cache")
    assert proc.returncode == 4 and "configuration error" in proc.stderr


def test_warm_listing_follows_every_kind_of_change(project: Path, tmp_path: Path) -> None:
    """Two arms per change: the cached answer is reused when nothing changed, never after a change."""
    cache = tmp_path / "cache"
    first = tach(["list"], project, cache).stdout
    assert tach(["list"], project, cache).stdout == first
    (project / "tests" / "test_c.py").write_text("def test_c(): pass\n")  # new file
    assert "tests/test_c.py::test_c" in tach(["list"], project, cache).stdout
    (project / "tests" / "test_c.py").write_text("def test_c(): pass\ndef test_d(): pass\n")  # edited file
    assert "tests/test_c.py::test_d" in tach(["list"], project, cache).stdout
    (project / "tests" / "conftest.py").write_text("collect_ignore = ['test_c.py']\n")  # new conftest
    assert "test_c.py" not in tach(["list"], project, cache).stdout
    (project / "pyproject.toml").write_text("[tool.pytest.ini_options]\ntestpaths = ['tests']\n")  # config
    assert "tests/test_a.py::test_slow" in tach(["list"], project, cache).stdout
    (project / "tests" / "sub").mkdir()
    (project / "tests" / "sub" / "test_s.py").write_text("def test_s(): pass\n")  # new folder
    assert "tests/sub/test_s.py::test_s" in tach(["list"], project, cache).stdout


def test_broken_pipe_is_quiet(project: Path, tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "c"), "PYTHONPATH": str(ROOT)}
    code = "import sys; from tach_ls.cli import main; sys.exit(main())"
    lister = subprocess.Popen([sys.executable, "-c", code, "list", "--no-cache"], cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert lister.stdout is not None
    lister.stdout.close()  # the reader goes away before reading anything
    _, err = lister.communicate(timeout=60)
    assert b"Traceback" not in err
