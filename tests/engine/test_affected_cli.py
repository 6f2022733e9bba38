"""`tach-ls run --affected`: records every run, then runs only what a change can affect, with reasons."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "projects" / "lsp_basic"


def tach(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("VIRTUAL_ENV", None)
    return subprocess.run(
        [sys.executable, "-c", "import sys; from tach_ls.cli import main; sys.exit(main())", "run", "--python", sys.executable, *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def finished(proc: subprocess.CompletedProcess[str]) -> dict[str, str]:
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return {e["test"]: e["status"] for e in events if e["event"] == "test_finished"}


def test_affected_runs_only_what_a_change_reaches(tmp_path: Path) -> None:
    project = tmp_path / "p"
    shutil.copytree(FIXTURE, project)
    (project / "tests" / "test_slow.py").unlink()
    first = tach(project, "--coverage", "--format", "json")
    assert len(finished(first)) == 5, first.stderr
    nothing = tach(project, "--affected", "--format", "json", "--explain")
    assert finished(nothing) == {"tests/test_calc.py::test_add_wrong": "failed"}, "only last time's failure"
    lib = project / "src" / "calc" / "__init__.py"
    lib.write_text(lib.read_text().replace("return a / b", "return a // b"))
    changed = tach(project, "--affected", "--format", "json", "--explain")
    assert set(finished(changed)) == {
        "tests/test_calc.py::test_add_wrong",
        "tests/test_calc.py::test_div[1-1-1]",
        "tests/test_calc.py::test_div[6-3-2]",
        "tests/test_calc.py::TestDiv::test_by_zero",
    }
    assert "executed src/calc/__init__.py::div, which changed" in changed.stderr
    comment = tach(project, "--affected", "--format", "json")
    assert set(finished(comment)) == {"tests/test_calc.py::test_add_wrong"}, "a recorded state selects nothing new"


def test_since_a_bad_revision_is_a_usage_error(tmp_path: Path) -> None:
    project = tmp_path / "p"
    shutil.copytree(FIXTURE, project)
    proc = tach(project, "--affected", "--since", "no-such-rev")
    assert proc.returncode == 4 and "--since no-such-rev" in proc.stderr


def test_a_changed_data_file_selects_the_tests_that_read_it(tmp_path: Path) -> None:
    project = tmp_path / "p"
    shutil.copytree(ROOT / "tests" / "fixtures" / "projects" / "impact_deps", project)
    first = tach(project, "--coverage", "--format", "json")
    assert set(finished(first).values()) == {"passed"}, first.stderr
    quiet = tach(project, "--affected", "--format", "json")
    events = [json.loads(line) for line in quiet.stdout.splitlines()]  # every line is JSON, even for an empty run
    assert [e["event"] for e in events] == ["run_start", "run_finished"] and quiet.returncode == 0, quiet.stdout
    assert "no test is affected" in quiet.stderr
    data = project / "data" / "prices.csv"
    data.write_text(data.read_text().replace("pear,4", "pear,5"))
    changed = tach(project, "--affected", "--format", "json", "--explain")
    assert finished(changed) == {
        "tests/test_deps.py::test_reads_data_after_chdir": "passed",
        "tests/test_deps.py::test_starts_a_process": "passed",  # its subprocess is invisible: any change re-runs it
    }, changed.stderr
    assert "read data/prices.csv, which changed" in changed.stderr
