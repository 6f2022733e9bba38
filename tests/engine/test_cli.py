"""`tach-ls run` end to end: the JSON event contract, exit codes, JUnit XML, flags that must parse."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytestmark = pytest.mark.engine

REPO = Path(__file__).resolve().parents[2]


def tach(root: Path, python: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("VIRTUAL_ENV", None)
    code = "import sys; from tach_ls.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, "run", "--python", python, *args],
        cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def events(proc: subprocess.CompletedProcess[str]) -> list[dict]:
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_json_events_follow_the_contract(project, project_python) -> None:
    root = project("engine_basic")
    proc = tach(root, project_python, "tests/test_basic.py::test_pass", "tests/test_basic.py::test_fail", "--format", "json")
    assert proc.returncode == 1, proc.stderr
    got = events(proc)
    assert got[0] == {"event": "run_start", "total": 2}
    finished = {e["test"]: e for e in got if e["event"] == "test_finished"}
    assert set(finished) == {"tests/test_basic.py::test_pass", "tests/test_basic.py::test_fail"}
    fail = finished["tests/test_basic.py::test_fail"]
    assert {"test", "status", "duration_ms", "path", "line", "message"} <= set(fail)
    assert fail["status"] == "failed" and fail["path"] == "tests/test_basic.py" and fail["line"] == 16
    last = got[-1]
    assert last["event"] == "run_finished"
    assert (last["passed"], last["failed"], last["skipped"], last["errors"]) == (1, 1, 0, 0)


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["tests/test_basic.py::test_pass"], 0),
        (["tests/test_basic.py::test_fail"], 1),
        (["-m", "no_such_mark"], 5),
        (["tests/test_basic.py::does_not_exist"], 4),
        (["no/such/file.py"], 4),
        (["-k", "("], 4),
    ],
)
def test_exit_codes_are_pytests(project, project_python, args: list[str], code: int) -> None:
    proc = tach(project("engine_basic"), project_python, *args)
    assert proc.returncode == code, proc.stdout + proc.stderr


def test_human_report_and_junit_xml_and_future_flags(project, project_python, tmp_path: Path) -> None:
    root = project("engine_basic")
    junit = tmp_path / "out" / "junit.xml"
    proc = tach(
        root, project_python, "--junit-xml", str(junit), "--lcov", str(tmp_path / "x.lcov"), "--coverage",
        "--affected", "--isolation", "auto", "--mode", "spawn", "-n", "2", "--timeout", "30",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "not available yet" not in proc.stderr  # every flag of the contract is implemented now
    assert (tmp_path / "x.lcov").read_text().startswith("SF:")
    assert "short test summary info" in proc.stdout
    assert proc.stdout.rstrip().splitlines()[-1].startswith("=")
    assert "3 failed, 11 passed, 1 skipped, 1 xfailed, 1 xpassed, 2 errors in" in proc.stdout
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("19", "3", "2", "2")


def test_missing_interpreter_is_a_usage_error(project, tmp_path: Path) -> None:
    proc = tach(project("engine_basic"), str(tmp_path / "no-python"))
    assert proc.returncode == 4 and "cannot run the project interpreter" in proc.stderr


@pytest.mark.parametrize("fmt", ["json", "human"])
def test_a_reader_that_leaves_stops_the_run_cleanly(project, project_python, fmt: str) -> None:
    """`tach-ls run ... | head -1`. The regression: the reporter's BrokenPipeError, raised on the
    supervisor's loop thread, stopped the loop, and the command waited for results forever."""
    root = project("engine_basic")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("VIRTUAL_ENV", None)
    code = "import sys; from tach_ls.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "run", "--python", project_python, "--format", fmt, "tests"],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline()  # the first line, then the reader leaves
    proc.stdout.close()
    assert proc.wait(60) == 2  # interrupted, as the report could not be written
    stderr = proc.stderr.read().decode()
    assert "Traceback" not in stderr, stderr
    again = tach(root, project_python, "tests/test_basic.py::test_pass", "--format", "json")
    assert again.returncode == 0 and events(again)[-1]["passed"] == 1
