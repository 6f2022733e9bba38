"""`tach-ls run --coverage` and `--lcov FILE`: the table, the JSON events, the LCOV file, on both interpreters."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from .test_cli import events, tach

pytestmark = pytest.mark.engine

OPS = "tests/test_ops.py"


def lcov_records(path: Path) -> dict[str, dict[str, object]]:
    records: dict[str, dict[str, object]] = {}
    current: dict[str, object] = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(":")
        if key == "SF":
            current = records.setdefault(value, {"DA": {}})
        elif key == "DA":
            number, hits = value.split(",")
            current["DA"][int(number)] = int(hits)  # type: ignore[index]
        elif key in ("LF", "LH"):
            current[key] = int(value)
    return records


def test_json_events_and_lcov_agree(project, project_python, tmp_path: Path) -> None:
    """Regression: the LCOV file, the per-file events and the per-test lines telling different stories."""
    root = project("coverage_basic")
    out = tmp_path / "out" / "cov.lcov"
    proc = tach(root, project_python, OPS, "--format", "json", "--lcov", str(out), "-n", "2")
    assert proc.returncode == 1, proc.stderr  # test_fails fails
    got = events(proc)
    assert got[0]["event"] == "run_start" and got[-1]["event"] == "run_finished"
    per_file = {e["path"]: e for e in got if e["event"] == "coverage"}
    assert set(per_file) == {"src/calc/__init__.py", "src/calc/lazymod.py", "src/calc/ops.py", "tests/conftest.py", OPS}
    tests = {e["test"]: e for e in got if e["event"] == "test_finished"}
    assert all("coverage" in e and e["coverage_partial"] is False for e in tests.values())
    ran = set().union(*(e["coverage"].get("src/calc/ops.py", []) for e in tests.values()))
    ops = per_file["src/calc/ops.py"]
    statements = set(ops["covered"]) | set(ops["missed"])
    assert ran & statements <= set(ops["covered"])  # per-test lines are raw (continuation lines too); the report folds them
    records = lcov_records(out)
    assert set(records) == set(per_file)
    for rel, record in records.items():
        hits = record["DA"]
        assert {n for n, h in hits.items() if h} == set(per_file[rel]["covered"])  # type: ignore[union-attr]
        assert {n for n, h in hits.items() if not h} == set(per_file[rel]["missed"])  # type: ignore[union-attr]
        assert record["LF"] == len(hits) and record["LH"] == len(per_file[rel]["covered"])  # type: ignore[arg-type]


def test_human_table_comes_before_the_closing_line(project, project_python) -> None:
    root = project("coverage_basic")
    proc = tach(root, project_python, OPS, "--coverage", "-n", "1")
    lines = proc.stdout.rstrip().splitlines()
    assert lines[-1].startswith("=") and "1 failed" in lines[-1]
    assert lines[-2].startswith("TOTAL")
    table = [line for line in lines if line.startswith("src/calc/ops.py")]
    assert len(table) == 1 and table[0].split()[1:3] != ["0", "0"]
    assert "not available yet" not in proc.stderr


def test_no_coverage_no_table_no_events(project, project_python) -> None:
    """Two arms with the tests above: without the flags, the output is exactly what it was."""
    root = project("coverage_basic")
    proc = tach(root, project_python, OPS, "--format", "json", "-n", "1")
    got = events(proc)
    assert not [e for e in got if e["event"] == "coverage"]
    assert all("coverage" not in e for e in got)
    assert json.dumps(got)  # still plain JSON lines


def test_a_run_with_coverage_leaves_pyc_files_plain_pytest_can_import(
    project, project_python, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: with bytecode writing on (a user's machine), the modules importlib and pytest's assertion
    rewriter compiled during a run with coverage were cached in ``__pycache__`` with their probes, whose map
    marshal wrote as ``bytes``: afterwards plain pytest failed to import every test module ("'bytes' object
    does not support item assignment"), and so did the next zygote. Arms: plain pytest on the cache the run
    wrote; a second run, from that cache, records the same lines as the first."""
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    root = project("coverage_basic")
    first = tach(root, project_python, OPS, "--format", "json", "--coverage", "-n", "1")
    assert first.returncode == 1, first.stderr  # test_fails fails
    assert list((root / "tests" / "__pycache__").glob("test_ops.*pytest*.pyc"))  # the rewriter's cache
    assert list((root / "src" / "calc" / "__pycache__").glob("ops.*.pyc"))  # importlib's
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    plain = subprocess.run(
        [project_python, "-m", "pytest", "-q", "-p", "no:cacheprovider", OPS],
        cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert plain.returncode == 1 and "1 failed" in plain.stdout and "error" not in plain.stdout, plain.stdout
    second = tach(root, project_python, OPS, "--format", "json", "--coverage", "-n", "1")
    assert second.returncode == 1, second.stderr

    def lines(proc: subprocess.CompletedProcess[str]) -> dict[str, object]:
        return {e["test"]: (e["status"], e["coverage"]) for e in events(proc) if e["event"] == "test_finished"}

    assert lines(second) == lines(first) and any(coverage for _, coverage in lines(first).values())
