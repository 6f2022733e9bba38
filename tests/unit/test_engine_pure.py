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


def test_wide_batches_keep_order_and_split_only_big_modules() -> None:
    nodeids = ids("a.py", 5) + ids("b.py", 1) + ids("c.py", 30) + ids("d.py", 2)
    batches = make_batches(nodeids, 2, targeted=False)
    assert [n for batch in batches for n in batch] == nodeids
    size = max(10, -(-len(nodeids) // 8))
    for batch in batches:
        modules = {n.split("::")[0] for n in batch}
        if "c.py" in modules:
            assert modules == {"c.py"} and len(batch) <= size, "a big module is cut into pieces of its own"
    small = {m: [i for i, b in enumerate(batches) if any(n.startswith(m + "::") for n in b)] for m in ("a.py", "b.py", "d.py")}
    assert all(len(where) == 1 for where in small.values()), "a small module is never split"


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
    assert ".C" + " " * 70 + " [100%]" in text
    assert "CRASHED t.py::b - worker killed by SIGSEGV during call" in text
    assert "1 crashed, 1 passed in 0.50s" in text.splitlines()[-1]


def test_human_live_line_on_a_terminal() -> None:
    out = io.StringIO()
    reporter = HumanReporter(out, tty=True, color=False)
    reporter.start(2)
    reporter.result(RESULTS[0])
    assert "\r\x1b[K[1/2] 1 passed  t.py::a" in out.getvalue()


ENGINE = Path(__file__).resolve().parents[2] / "tach_ls" / "engine"
ZYGOTE_SIDE = (
    "zygote", "collected", "fork_worker", "wire", "procutil", "warmth", "results",
    "namespaces", "nsutil", "coverage_ring", "ring_writer", "tracer", "tracefunc", "probes", "bytecode", "debugger", "deps_audit",
    "worker_status",
)  # fmt: skip
"""The modules that run in the project's interpreter (DESIGN.md's rule); those not written yet are not listed below."""
ALLOWED = ("pytest", "_pytest", "__future__", "coverage", "debugpy")
"""Besides the standard library: pytest, coverage.py (whose CTracer ``tracer`` uses when the project has it),
and debugpy (a debug worker's, from the project's interpreter; a clear error when it is missing)."""


@pytest.mark.parametrize("module", [m for m in ZYGOTE_SIDE if (ENGINE / f"{m}.py").exists()])
def test_zygote_side_imports_only_stdlib_and_pytest(module: str) -> None:
    """The regression: a zygote-side module importing tach_ls (absent from the project's venv) or a server dep."""
    import ast

    path = ENGINE / f"{module}.py"
    tree = ast.parse(path.read_text())
    guarded = set()  # imports inside `try: ... except ImportError`: optional, used only when present
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
            isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError") for h in node.handlers
        ):
            guarded.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    for node in ast.walk(tree):
        if id(node) in guarded:
            continue
        if isinstance(node, ast.ImportFrom) and node.level:
            assert (node.module or "") in ("", *ZYGOTE_SIDE), f"{module} imports .{node.module}"
            names = [a.name for a in node.names] if not node.module else []
            assert all(n in ZYGOTE_SIDE for n in names), f"{module} imports {names}"
            continue
        if isinstance(node, ast.ImportFrom):
            tops = [(node.module or "").split(".")[0]]
        elif isinstance(node, ast.Import):
            tops = [a.name.split(".")[0] for a in node.names]
        else:
            continue
        for top in tops:
            assert top in sys.stdlib_module_names or top in ALLOWED, f"{module}: {top}"
