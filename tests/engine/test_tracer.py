"""The line collectors in the project's interpreters: every core records the same lines, test by test.

Each case runs a small driver in the project interpreter (both 3.11 and
3.12, see ``conftest.PYTHONS``): it starts a ``tracer.Collector`` with a
given core, runs functions of a scratch module between ``begin_test`` and
``end_test``, and prints what the ring reader got per test. The cores must
agree with each other and with the lines the functions obviously run.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.engine

REPO = Path(__file__).resolve().parents[2]

MODULE = textwrap.dedent(
    """\
    import threading


    def branch(x):
        if x > 0:
            return "pos"
        return "neg"


    def loop(n):
        total = 0
        for i in range(n):
            total += i
        return total


    def in_thread():
        out = []
        thread = threading.Thread(target=lambda: out.append(branch(1)))
        thread.start()
        thread.join()
        return out
    """
)

DRIVER = textwrap.dedent(
    """\
    import json, sys
    sys.path.insert(0, {repo!r})
    from tach_ls.engine import coverage_feed, coverage_ring, ring_reader, tracer

    root, core = sys.argv[1], sys.argv[2]
    options = json.loads(sys.argv[3])
    other_from = options.pop("other_tool_from", None)  # a test from which another sys.monitoring tool runs
    other_calls = []

    def start_other_tool():
        import types
        mon = sys.monitoring
        mon.use_tool_id(2, "other")
        mon.register_callback(2, mon.events.LINE, lambda code, line: other_calls.append(line) or mon.DISABLE)
        for fn in (scratch.branch, scratch.loop):
            mon.set_local_events(2, fn.__code__, mon.events.LINE)

    collector = tracer.Collector(root, core=core, **options)
    collector.start()
    sys.path.insert(0, root)
    import scratch
    outside = collector.take_outside()
    ring = collector.new_ring()
    collector.attach(ring)
    reader = ring_reader.RingReader(ring)
    feed, names = coverage_feed.CoverageFeed(root), {{}}
    plan = [lambda: scratch.branch(1), lambda: scratch.branch(-1), lambda: scratch.branch(1),
            lambda: scratch.loop(3), lambda: scratch.in_thread(), lambda: None]
    tests = {{}}
    for test, call in enumerate(plan, 1):
        if test == other_from:
            start_other_tool()
        collector.begin_test(test)
        call()
        collector.end_test(test)
        got = reader.take(test)
        found, unknown = feed.resolve_test(reader, got, names)
        tests[test] = {{"complete": got.complete and not unknown,
                       "lines": sorted((rel.rsplit("/", 1)[-1], n) for rel, lines in found.items() for n in lines)}}
    print(json.dumps({{"name": collector.name, "note": collector.note, "outside": outside, "tests": tests,
                      "tool": getattr(collector.backend, "tool", None), "other_calls": other_calls}}))
    """
).format(repo=str(REPO))


def drive(python: str, tmp_path: Path, core: str, **options: Any) -> dict[str, Any]:
    root = tmp_path / "ws"
    root.mkdir(exist_ok=True)
    (root / "scratch.py").write_text(MODULE)
    (tmp_path / "driver.py").write_text(DRIVER)
    proc = subprocess.run(
        [python, str(tmp_path / "driver.py"), str(root), core, json.dumps(options)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def lines(*numbers: int) -> list[list[Any]]:
    return [["scratch.py", n] for n in numbers]


EXPECTED = {
    "1": lines(5, 6),  # branch(1)
    "2": lines(5, 7),  # branch(-1)
    "3": lines(5, 6),  # branch(1) again: its lines come back (re-armed, or sets cleared)
    "4": lines(11, 12, 13, 14),  # loop(3)
    "5": lines(5, 6, 18, 19, 20, 21, 22),  # in_thread: the thread's lines belong to the test
    "6": [],
}


def cores_of(python: str) -> list[str]:
    """The cores this interpreter has: probes on 3.11/3.12, sys.monitoring on 3.12+, and the trace functions."""
    probe = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True, text=True, check=True)
    version = tuple(int(p) for p in probe.stdout.split())
    return (["probes"] if version in ((3, 11), (3, 12)) else []) + (["sysmon"] if version >= (3, 12) else []) + ["ctrace", "settrace"]


def test_every_core_records_each_test_exactly(project_python: str, tmp_path: Path) -> None:
    """Regression: a line missing from the second test that runs it (DISABLE without re-arming), or a
    thread's lines lost, in any core. Arms: the same call in tests 1 and 3, and every core of the interpreter.
    """
    seen = {}
    for core in cores_of(project_python):
        got = drive(project_python, tmp_path, core)
        assert {test: entry["lines"] for test, entry in got["tests"].items()} == EXPECTED, (core, got)
        assert all(entry["complete"] for entry in got["tests"].values()), core
        assert got["outside"] == {str(tmp_path / "ws" / "scratch.py"): [1, 4, 10, 17]}, core  # the module's top level
        seen[core] = got["name"]
    assert seen.get("settrace") == "sys.settrace"
    assert seen.get("ctrace") == "coverage.py CTracer"  # the test interpreters have coverage installed
    assert seen.get("probes") == "bytecode probes"  # 3.11 and 3.12: both run it


@pytest.mark.parametrize("other_from", [1, 2], ids=["from-the-start", "from-the-second-test"])
def test_monitoring_leaves_another_tools_disabled_lines_alone(project_python: str, tmp_path: Path, other_from: int) -> None:
    """Alone, a test boundary restarts every disabled event at once; with another tool active (coverage.py
    in a test, a debugger) that would re-deliver its lines. Two arms against the regression: each of the
    other tool's lines reaches it once however many tests run them, and our tests' lines stay exact,
    also when the other tool appears mid-run (the callback switches to tracking what it re-arms).
    """
    if "sysmon" not in cores_of(project_python):
        pytest.skip("sys.monitoring needs Python 3.12+")
    got = drive(project_python, tmp_path, "sysmon", other_tool_from=other_from)
    assert {test: entry["lines"] for test, entry in got["tests"].items()} == EXPECTED
    baseline = drive(project_python, tmp_path, "ctrace", other_tool_from=other_from)  # our tool not in sys.monitoring
    assert sorted(got["other_calls"]) == sorted(baseline["other_calls"]) and baseline["other_calls"]


def test_the_default_core_is_the_probes(project_python: str, tmp_path: Path) -> None:
    """Regression: ``auto`` falling back to a tracer (several times slower on 3.11) where probes work."""
    assert drive(project_python, tmp_path, "auto")["name"] == "bytecode probes"


def test_monitoring_never_takes_coverage_py_tool_id(project_python: str, tmp_path: Path) -> None:
    """Regression: our sys.monitoring tool taking COVERAGE_ID, so coverage.py run inside a test cannot start."""
    if "sysmon" not in cores_of(project_python):
        pytest.skip("sys.monitoring needs Python 3.12+")
    got = drive(project_python, tmp_path, "sysmon")
    assert got["name"] == "sys.monitoring" and got["tool"] not in (0, 1, 2, 5)


def test_settrace_core_says_once_that_it_is_slow(project_python: str, tmp_path: Path) -> None:
    assert "slower" in drive(project_python, tmp_path, "settrace")["note"]
    assert drive(project_python, tmp_path, "auto")["note"] == ""


@pytest.mark.parametrize(
    ("options", "recorded"),
    [({}, True), ({"omit": ["scratch.py"]}, False), ({"include": ["other/*"]}, False), ({"include": ["scratch.py"]}, True)],
    ids=["default", "omitted", "not-included", "included"],
)
def test_include_and_omit_globs(project_python: str, tmp_path: Path, options: dict[str, Any], recorded: bool) -> None:
    got = drive(project_python, tmp_path, "auto", **options)
    assert (got["tests"]["1"]["lines"] != []) is recorded
