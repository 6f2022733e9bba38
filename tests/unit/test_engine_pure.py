"""Pure pieces of the engine: batching, selection by argument, interpreter choice, reporters."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from tach_ls.engine import interpreter
from tach_ls.engine.procutil import arg_matches, in_workspace
from tach_ls.engine.results import Status, TestResult
from tach_ls.engine.runs import RunSummary, make_batches
from tach_ls.report.human import HumanReporter
from tach_ls.report.ndjson import NdjsonReporter


def ids(module: str, n: int) -> list[str]:
    return [f"{module}::test_{i}" for i in range(n)]


def test_targeted_batches_are_one_test_each() -> None:
    assert make_batches(["a.py::x", "a.py::y"], 2, targeted=True) == [["a.py::x"], ["a.py::y"]]


def test_wide_batches_never_split_a_module() -> None:
    nodeids = ids("a.py", 5) + ids("b.py", 1) + ids("c.py", 7) + ids("d.py", 2)
    batches = make_batches(nodeids, 2, targeted=False)
    assert [n for batch in batches for n in batch] == nodeids
    for batch in batches:
        modules = [n.split("::")[0] for n in batch]
        for module in set(modules):
            assert sum(1 for n in nodeids if n.startswith(module + "::")) == modules.count(module)
    assert 2 <= len(batches) <= 4


def test_one_worker_gets_one_batch() -> None:
    assert len(make_batches(ids("a.py", 3) + ids("b.py", 3), 1, targeted=False)) == 1


@pytest.mark.parametrize(
    ("nodeid", "arg", "expected"),
    [
        ("tests/test_a.py::test_x", "tests", True),
        ("tests/test_a.py::test_x", "tests/", True),
        ("tests/test_a.py::test_x", "tests/test_a.py", True),
        ("tests/test_a.py::test_x", "tests/test_a.py::test_x", True),
        ("tests/test_a.py::test_x[1]", "tests/test_a.py::test_x", True),
        ("tests/test_a.py::T::test_x", "tests/test_a.py::T", True),
        ("tests/test_a.py::test_xy", "tests/test_a.py::test_x", False),
        ("tests2/test_a.py::test_x", "tests", False),
        ("tests/test_a.py::test_x", "", True),
    ],
)
def test_arg_matches_like_pytest(nodeid: str, arg: str, expected: bool) -> None:
    assert arg_matches(nodeid, arg) is expected


def test_workspace_files_exclude_a_venv_inside_the_root(tmp_path: Path) -> None:
    root = str(tmp_path)
    prefixes = (str(tmp_path / ".venv") + "/",)
    assert in_workspace(str(tmp_path / "pkg" / "m.py"), root, prefixes)
    assert not in_workspace(str(tmp_path / ".venv" / "lib" / "m.py"), root, prefixes)
    assert not in_workspace("/elsewhere/m.py", root, prefixes)
    assert not in_workspace("<frozen os>", root, prefixes)


def test_interpreter_order(tmp_path: Path) -> None:
    venv_python = tmp_path / ".venv" / "bin" / "python"
    venv_python.parent.mkdir(parents=True)
    venv_python.write_text("")
    other = tmp_path / "env" / "bin" / "python"
    other.parent.mkdir(parents=True)
    other.write_text("")
    assert interpreter.find(tmp_path, "/x/python", env={}) == Path("/x/python")
    assert interpreter.find(tmp_path, None, env={"VIRTUAL_ENV": str(tmp_path / "env")}) == other
    assert interpreter.find(tmp_path, None, env={}) == venv_python
    assert interpreter.find(tmp_path / "nothing", None, env={}) == Path(sys.executable)


def test_interpreter_check_names_the_fix(tmp_path: Path) -> None:
    assert interpreter.check(Path(sys.executable)).version[:2] == sys.version_info[:2]
    with pytest.raises(interpreter.InterpreterError, match="cannot run"):
        interpreter.check(tmp_path / "missing")


def summary_of(results: list[TestResult], code: int = 1) -> RunSummary:
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status.value] = counts.get(r.status.value, 0) + 1
    return RunSummary(run_id=1, exit_code=code, counts=counts, duration_s=0.5, results=results)


RESULTS = [
    TestResult("t.py::a", Status.PASSED, 1.0, path="t.py", line=1),
    TestResult("t.py::b", Status.CRASHED, 2.0, message="worker killed by SIGSEGV during call", path="t.py", line=5),
]


def test_ndjson_events() -> None:
    out = io.StringIO()
    reporter = NdjsonReporter(out)
    reporter.start(2)
    for r in RESULTS:
        reporter.result(r)
    reporter.finish(summary_of(RESULTS))
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines[0] == {"event": "run_start", "total": 2}
    assert lines[2]["status"] == "crashed" and lines[2]["line"] == 5
    assert lines[3]["event"] == "run_finished" and lines[3]["crashed"] == 1 and lines[3]["exit_code"] == 1


def test_human_summary_line() -> None:
    out = io.StringIO()
    reporter = HumanReporter(out, tty=False)
    reporter.start(2)
    for r in RESULTS:
        reporter.result(r)
    reporter.finish(summary_of(RESULTS))
    text = out.getvalue()
    assert "t.py .C" in text
    assert "CRASHED t.py::b - worker killed by SIGSEGV during call" in text
    assert "1 crashed, 1 passed in 0.50s" in text.splitlines()[-1]


def test_human_live_line_on_a_terminal() -> None:
    out = io.StringIO()
    reporter = HumanReporter(out, tty=True, color=False)
    reporter.start(2)
    reporter.result(RESULTS[0])
    assert "\r\x1b[K[1/2] 1 passed  t.py::a" in out.getvalue()
