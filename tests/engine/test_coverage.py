"""Per-test coverage through real zygotes, on both interpreters: agreement with coverage.py, faults, cores.

The reference is coverage.py itself on the same project and the same tests:
``coverage run -m pytest`` with one dynamic context per test phase, switched
the way pytest-cov's ``--cov-context=test`` does (``CTX_PLUGIN``). tach-ls's
executed lines per file must equal coverage.py's, and each test's lines must
equal the union of its contexts.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tach_ls import coverage_data
from tach_ls.engine.results import Status, TestResult
from tach_ls.engine.runs import RunMode, RunRequest

from .conftest import RUN_BOUND, EngineFactory, _find_python, statuses

pytestmark = pytest.mark.engine

OPS = "tests/test_ops.py"
HOSTILE = "tests/test_hostile.py"
CTX_PLUGIN = '''
"""One coverage.py dynamic context per test phase, switched as pytest-cov's --cov-context=test does."""
import coverage
import pytest


def _switch(item, when):
    cov = coverage.Coverage.current()
    if cov is not None:
        cov.switch_context(f"{item.nodeid}|{when}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    _switch(item, "setup")
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    _switch(item, "run")
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item):
    _switch(item, "teardown")
    yield
'''


def coverage_reference(python: str, root: Path, tmp_path: Path, *args: str) -> tuple[dict[str, set[int]], dict[str, dict[str, set[int]]]]:
    """coverage.py's executed lines per file, and per test (union of its phase contexts), for ``pytest ARGS``."""
    from coverage import CoverageData

    plugins = tmp_path / "plugins"
    plugins.mkdir(exist_ok=True)
    (plugins / "tach_ctx.py").write_text(CTX_PLUGIN)
    data_file = tmp_path / "reference.coverage"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "COV_", "COVERAGE"))}
    env["PYTHONPATH"] = str(plugins)
    cmd = [python, "-m", "coverage", "run", f"--data-file={data_file}", f"--include={root}/*",
           "-m", "pytest", "-p", "tach_ctx", "-q", "-p", "no:cacheprovider", *args]  # fmt: skip
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    data = CoverageData(basename=str(data_file))
    data.read()
    files: dict[str, set[int]] = {}
    tests: dict[str, dict[str, set[int]]] = {}
    real_root = os.path.realpath(root)
    for path in data.measured_files():
        rel = os.path.relpath(os.path.realpath(path), real_root)
        files[rel] = set(data.lines(path) or [])
        for line, contexts in data.contexts_by_lineno(path).items():
            for context in contexts:
                if context:
                    tests.setdefault(context.rsplit("|", 1)[0], {}).setdefault(rel, set()).add(line)
    return files, tests


def line_of(root: Path, rel: str, text: str) -> int:
    """The 1-based line of ``rel`` that contains ``text`` (so the tests survive edits of the fixture)."""
    for number, line in enumerate((root / rel).read_text().splitlines(), 1):
        if text in line:
            return number
    raise AssertionError(f"{text!r} not in {rel}")


def test_lines_agree_with_coverage_py_per_file_and_per_test(engine, project, project_python, tmp_path) -> None:
    """Regression: any line the tracer, the ring or the attribution gets wrong, per file or per test.

    One worker runs the module in pytest's order, as the reference does (with
    several workers, a module imported lazily runs its top level once per
    worker: right for each worker, different from one process).
    """
    root = project("coverage_basic")
    eng = engine(root, coverage=True, workers=1, collect_args=[str(root / OPS)])
    summary = eng.run(OPS)
    assert len(summary.results) == 14 and summary.exit_code == 1, summary.errors  # test_fails fails
    assert summary.coverage is not None and summary.coverage.partial == []
    ref_files, ref_tests = coverage_reference(project_python, root, tmp_path, OPS)
    ours = {rel: set(lines) for rel, lines in summary.coverage.files.items()}
    assert ours == ref_files
    by_test = {r.nodeid: {rel: set(lines) for rel, lines in (r.coverage or {}).items()} for r in summary.results}
    assert set(by_test) == set(statuses(summary))
    for nodeid, lines in by_test.items():
        assert lines == ref_tests.get(nodeid, {}), nodeid
    # And the report: missed lines are coverage.py's "Missing" for the same data.
    reports = coverage_data.analyze(root, summary.coverage.files)
    ops = reports["src/calc/ops.py"]
    assert line_of(root, "src/calc/ops.py", 'return "nope"') in ops.missed
    assert line_of(root, "src/calc/ops.py", "return 1") not in ops.executable  # pragma: no cover
    assert line_of(root, "src/calc/ops.py", "raise NotImplementedError") not in ops.executable  # exclude_also
    assert line_of(root, "src/calc/ops.py", "+ b)") not in ops.covered  # folded onto its statement's first line


@pytest.mark.parametrize("version", ["3.10", "3.13"])
def test_other_pythons_start_and_agree_with_coverage_py(project, tmp_path, version: str) -> None:
    """Regression: ``bytecode`` built its 3.11/3.12 opcode tables at import, so on 3.10 (no ``RESUME``) and on
    3.13 (``dis._inline_cache_entries`` a dict) importing the tracer raised and no zygote started at all, with
    coverage or without. Arms: 3.10 (coverage.py's C tracer) and 3.13 (``sys.monitoring``), each test's lines
    against coverage.py's own contexts."""
    python = _find_python(version)
    if python is None:
        pytest.fail(f"python{version} with pytest and coverage is needed: scripts/install.sh --test installs them")
    root = project("coverage_basic")
    factory = EngineFactory(python)
    try:
        summary = factory(root, coverage=True, workers=1, collect_args=[str(root / OPS)]).run(OPS)
    finally:
        factory.close()
    assert len(summary.results) == 14 and summary.exit_code == 1, summary.errors  # test_fails fails
    assert summary.coverage is not None and summary.coverage.partial == []
    ref_files, ref_tests = coverage_reference(python, root, tmp_path, OPS)
    assert {rel: set(lines) for rel, lines in summary.coverage.files.items()} == ref_files
    for result in summary.results:
        assert {rel: set(lines) for rel, lines in (result.coverage or {}).items()} == ref_tests.get(result.nodeid, {})


def test_coverage_off_collects_nothing(module_engine, project) -> None:
    """Two arms with the next test: off means no tracer, no ring, no lines anywhere."""
    eng = module_engine(project("coverage_basic"), workers=2)
    summary = eng.run(OPS)
    assert summary.coverage is None
    assert all(r.coverage is None and not r.coverage_partial for r in summary.results)


def test_per_test_lines_with_two_workers_and_clicks(module_engine, project) -> None:
    """Regression: lines attributed to the neighbour of a test in its batch, or lost on a one-test click."""
    root = project("coverage_basic")
    eng = module_engine(root, coverage=True, workers=2)
    summary = eng.run(OPS)
    results = {r.nodeid: r for r in summary.results}
    divide_raise = line_of(root, "src/calc/ops.py", 'raise ZeroDivisionError("b is zero")')
    add_body = line_of(root, "src/calc/ops.py", "return a + b")
    assert divide_raise in results[f"{OPS}::test_divide_by_zero"].coverage["src/calc/ops.py"]
    assert divide_raise not in results[f"{OPS}::test_divide"].coverage["src/calc/ops.py"]
    assert add_body in results[f"{OPS}::test_thread"].coverage["src/calc/ops.py"]  # run in the test's thread
    assert "src/calc/ops.py" not in results[f"{OPS}::test_skipped"].coverage
    teardown = line_of(root, "tests/conftest.py", "acct.balance = 0")
    assert teardown in results[f"{OPS}::test_account"].coverage["tests/conftest.py"]
    # The same test again, alone (a click forks one worker): the same lines, re-armed in a fresh worker.
    again = eng.run(f"{OPS}::test_divide_by_zero")
    assert again.results[0].coverage == results[f"{OPS}::test_divide_by_zero"].coverage
    assert again.coverage is not None and divide_raise in again.coverage.files["src/calc/ops.py"]


@pytest.mark.parametrize("core", ["auto", "settrace"])
def test_filterwarnings_error_never_sees_the_collector(engine, project, project_python, core: str) -> None:
    """Regression: the collector's own warnings turned into test errors by ``filterwarnings = error``.

    The fixture sets ``filterwarnings = ["error"]``. Arms: the default core
    (sys.monitoring on 3.12, the C tracer on 3.11) and the sys.settrace
    fallback, whose one-time note goes to the engine's warnings, never to the
    warnings module; statuses equal those of a run without coverage.
    """
    root = project("coverage_basic")
    plain = engine(root, workers=2).run(OPS)
    eng = engine(root, workers=2, coverage=True, coverage_core=core)
    summary = eng.run(OPS)
    assert statuses(summary) == statuses(plain)
    assert summary.coverage is not None and not summary.coverage.partial
    notes = [w for w in eng.sup.warnings if "sys.settrace" in w]
    assert len(notes) == (1 if core == "settrace" else 0), eng.sup.warnings


def test_a_replaced_trace_function_makes_the_test_partial(engine, project, project_python) -> None:
    """Regression: a test that calls ``sys.settrace(None)`` silently stopping coverage for the rest of its batch.

    Arms by core: the trace-function cores (the C tracer, sys.settrace) mark
    that test partial and reinstall themselves, so the next test is complete;
    the default (bytecode probes) is not affected at all and records the
    lines run after the call.
    """
    root = project("coverage_basic")
    for core in ["settrace", "ctrace", "auto"]:
        eng = engine(root, workers=1, coverage=True, coverage_core=core)
        summary = eng.run(f"{HOSTILE}::test_settrace_none", f"{HOSTILE}::test_after_settrace_none", workers=1)
        results = {r.nodeid.rsplit("::", 1)[1]: r for r in summary.results}
        replaced = results["test_settrace_none"]
        assert replaced.coverage_partial is (core != "auto"), core
        if core == "auto":
            assert line_of(root, "src/calc/ops.py", "return a + b") in replaced.coverage["src/calc/ops.py"]
        after = results["test_after_settrace_none"]
        assert not after.coverage_partial, core
        assert line_of(root, "src/calc/ops.py", "return a / b") in after.coverage["src/calc/ops.py"], core


def test_a_crashed_test_is_partial_and_the_next_run_is_complete(engine, project) -> None:
    """Regression: a worker killed mid-test leaving its test's coverage looking complete (or the ring mapped)."""
    root = project("coverage_basic")
    env = dict(os.environ, TACH_TEST_CRASH="1")
    eng = engine(root, workers=1, coverage=True, env=env)
    summary = eng.run(HOSTILE, workers=1)
    by_name = {r.nodeid.rsplit("::", 1)[1]: r for r in summary.results}
    crashed = by_name["test_crash"]
    assert crashed.status == Status.CRASHED
    assert crashed.coverage_partial and crashed.coverage == {}
    assert summary.coverage is not None and f"{HOSTILE}::test_crash" in summary.coverage.partial
    assert not by_name["test_after_settrace_none"].coverage_partial
    again = eng.run(f"{OPS}::test_add")
    assert again.results[0].status == Status.PASSED and not again.results[0].coverage_partial
    assert eng.sup._coverage is not None and not eng.sup._coverage.rings  # every ring released


def test_omit_and_include_globs(engine, project) -> None:
    root = project("coverage_basic")
    eng = engine(root, workers=1, coverage=True, coverage_omit=["tests/*"])
    summary = eng.run(f"{OPS}::test_add")
    assert summary.coverage is not None
    assert set(summary.coverage.files) == {"src/calc/__init__.py", "src/calc/ops.py"}
    eng2 = engine(root, workers=1, coverage=True, coverage_include=["src/calc/ops.py"])
    assert set(eng2.run(f"{OPS}::test_add").coverage.files) == {"src/calc/ops.py"}  # type: ignore[union-attr]


def test_spawn_mode_gives_the_same_lines(engine, project) -> None:
    """Regression: spawn mode (a fresh interpreter per batch) losing collection's lines or a test's."""
    root = project("coverage_basic")
    fork = engine(root, workers=1, coverage=True).run(OPS)
    spawn = engine(root, workers=1, coverage=True, mode=RunMode.SPAWN).run(OPS)
    assert spawn.coverage is not None and fork.coverage is not None
    assert spawn.coverage.files == fork.coverage.files
    assert {r.nodeid: r.coverage for r in spawn.results} == {r.nodeid: r.coverage for r in fork.results}


def test_an_edited_module_brings_its_new_lines(module_engine, project) -> None:
    """Regression: lines of the previous collected layer reported after the code changed under it."""
    root = project("coverage_basic")
    eng = module_engine(root, workers=1, coverage=True)
    first = eng.run(f"{OPS}::test_add")
    assert first.coverage is not None
    ops = root / "src/calc/ops.py"
    ops.write_text(ops.read_text().replace("    return a + b\n", "    total = a + b\n    return total\n", 1))
    second = eng.run(f"{OPS}::test_add")
    assert second.coverage is not None
    assert line_of(root, "src/calc/ops.py", "total = a + b") in second.coverage.files["src/calc/ops.py"]
    assert line_of(root, "src/calc/ops.py", "return total") in second.results[0].coverage["src/calc/ops.py"]  # type: ignore[index]


STREAM = """
import os

import pytest

from calc import ops


@pytest.mark.parametrize("n", range(60))
def test_many(n):
    assert ops.add(n, 1) == n + 1


def test_first():
    assert ops.add(1, 1) == 2


def test_waits_for_the_result_before_it():
    # Blocks until the caller has seen test_first's result and written to the FIFO (the run's timeout bounds it).
    with open(os.environ["TACH_TEST_FIFO"], "rb") as fifo:
        assert fifo.read(1) == b"x"
"""


def test_results_held_to_be_read_together_still_stream(engine, project, tmp_path) -> None:
    """With coverage on, results are recorded in batches (``RunScheduler.record_held``): more results than a
    batch holds all come, in order, each with its lines; and a result is never held for as long as its
    worker's next test takes. The last test blocks until the result of the one before it (same worker) has
    reached the caller: held until the end of the worker's batch, it would time out."""
    root = project("coverage_basic")
    (root / "tests" / "test_stream.py").write_text(STREAM)
    fifo = tmp_path / "first-result-seen"
    os.mkfifo(fifo)
    env = dict(os.environ, TACH_TEST_FIFO=str(fifo))
    eng = engine(root, workers=1, coverage=True, env=env, isolation="off", timeout=30.0)  # the FIFO is in the host's /tmp
    seen: list[str] = []
    opened: list[int] = []

    def on_result(result: TestResult) -> None:
        seen.append(result.nodeid.rsplit("::", 1)[1])
        if seen[-1] == "test_first":  # read-write: never blocks, and keeps the byte until the test opens it
            opened.append(os.open(fifo, os.O_RDWR))
            os.write(opened[-1], b"x")

    try:
        summary = eng.sup.run(RunRequest(args=["tests/test_stream.py"], workers=1), on_result=on_result).wait(RUN_BOUND)
    finally:
        for fd in opened:
            os.close(fd)
    assert set(statuses(summary).values()) == {Status.PASSED}, statuses(summary)
    assert seen == [f"test_many[{n}]" for n in range(60)] + ["test_first", "test_waits_for_the_result_before_it"]
    add_body = line_of(root, "src/calc/ops.py", "return a + b")
    for result in summary.results:
        assert not result.coverage_partial, result.nodeid
        if result.nodeid.endswith("]") or result.nodeid.endswith("test_first"):
            assert add_body in result.coverage["src/calc/ops.py"], result.nodeid
