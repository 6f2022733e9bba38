"""Runs through a real zygote: statuses, locations, output, selection, fixture scopes."""

from __future__ import annotations

import subprocess
from collections import Counter

import pytest

from tach_ls.engine.results import Status
from tach_ls.engine.supervisor import EngineState

from .conftest import statuses, wait_for

pytestmark = pytest.mark.engine

BASIC = "tests/test_basic.py"
EXPECTED = {
    "test_pass": Status.PASSED,
    "test_fail": Status.FAILED,
    "test_helper": Status.PASSED,
    "test_param[1-1]": Status.PASSED,
    "test_param[2-3]": Status.FAILED,
    "test_param[x-x]": Status.PASSED,
    "test_skipped": Status.SKIPPED,
    "test_xfail": Status.XFAILED,
    "test_xpass": Status.XPASSED,
    "test_marked_slow": Status.PASSED,
    "test_prints": Status.PASSED,
    "TestGroup::test_in_class": Status.PASSED,
    "TestGroup::test_in_class_two": Status.PASSED,
    "TestUnit::test_unittest_ok": Status.PASSED,
    "TestUnit::test_unittest_fail": Status.FAILED,
    "test_setup_error": Status.ERROR,
    "test_teardown_error": Status.ERROR,
    "test_tmp_path": Status.PASSED,
    "test_capsys": Status.PASSED,
}


def test_every_status_of_a_wide_run(engine, project) -> None:
    """The regression: a status word that differs from pytest's own verdict."""
    eng = engine(project("engine_basic"))
    summary = eng.run()
    assert statuses(summary) == {f"{BASIC}::{k}": v for k, v in EXPECTED.items()}
    assert summary.exit_code == 1
    assert eng.states[-1].state == EngineState.READY


def test_targeted_run_forks_one_worker_per_test(engine, project) -> None:
    eng = engine(project("engine_basic"))
    ids = [f"{BASIC}::test_pass", f"{BASIC}::test_helper", f"{BASIC}::TestGroup::test_in_class"]
    summary = eng.run(*ids)
    assert set(statuses(summary).values()) == {Status.PASSED}
    assert len({r.worker for r in summary.results}) == 3
    assert summary.exit_code == 0


def test_failure_location_message_and_output(engine, project) -> None:
    eng = engine(project("engine_basic"))
    failed = eng.result(f"{BASIC}::test_fail")
    source = (eng.sup.config.root / BASIC).read_text().splitlines()
    assert source[failed.line - 1].strip() == 'assert x == 2, "one is not two"'
    assert failed.message.startswith("AssertionError: one is not two")
    assert "def test_fail" in failed.longrepr
    assert failed.deep_path.endswith(BASIC) and failed.deep_line == failed.line
    printed = eng.result(f"{BASIC}::test_prints")
    assert printed.stdout == "hello from stdout\n"
    assert printed.stderr == "hello from stderr\n"
    setup_error = eng.result(f"{BASIC}::test_setup_error")
    assert setup_error.message == "error in setup: RuntimeError: fixture exploded"
    skipped = eng.result(f"{BASIC}::test_skipped")
    assert skipped.message == "Skipped: not today"


def test_selection_by_keyword_mark_and_parametrize_group(engine, project) -> None:
    eng = engine(project("engine_basic"))
    assert set(statuses(eng.run(keyword="in_class and not two"))) == {f"{BASIC}::TestGroup::test_in_class"}
    assert set(statuses(eng.run(markexpr="slow"))) == {f"{BASIC}::test_marked_slow"}
    group = eng.run(f"{BASIC}::test_param")
    assert sorted(statuses(group)) == sorted(f"{BASIC}::test_param[{p}]" for p in ("1-1", "2-3", "x-x"))
    klass = eng.run(f"{BASIC}::TestGroup")
    assert len(klass.results) == 2


def test_usage_errors_and_empty_selection(engine, project) -> None:
    eng = engine(project("engine_basic"))
    assert eng.run(f"{BASIC}::nope").exit_code == 4
    bad_k = eng.run(keyword="(")
    assert bad_k.exit_code == 4 and "-k" in bad_k.errors[0]
    assert eng.run(markexpr="nothing_has_this").exit_code == 5
    assert eng.run(f"{BASIC}::test_pass").exit_code == 0


def test_fixture_scopes_once_per_batch(engine, project) -> None:
    """The regression: session/module fixtures set up per test instead of per batch."""
    root = project("engine_fixtures")
    eng = engine(root, workers=1, isolation="off")  # the fixtures log into the project, which isolation discards
    summary = eng.run()
    assert len(summary.results) == 15 and summary.exit_code == 0
    events = [line.split(" ", 1)[1] for line in (root / "events.log").read_text().splitlines()]
    counts = Counter(events)
    assert counts["session-setup"] == 1 and counts["session-teardown"] == 1
    assert counts["package-setup"] == 1
    for module in ("test_mod_a", "test_mod_b", "test_mod_c"):
        assert counts[f"module-setup {module}"] == 1
        assert counts[f"module-teardown {module}"] == 1
    assert events[-1] == "session-teardown"


def test_wide_run_spreads_modules_over_workers(engine, project) -> None:
    root = project("engine_fixtures")
    eng = engine(root, workers=2)
    summary = eng.run()
    assert summary.exit_code == 0
    by_module: dict[str, set[int | None]] = {}
    for result in summary.results:
        by_module.setdefault(result.nodeid.split("::")[0], set()).add(result.worker)
    assert all(len(workers) == 1 for workers in by_module.values()), "a module was split across workers"
    assert len({r.worker for r in summary.results}) >= 2


def test_async_tests_with_pytest_asyncio(engine, project, project_python) -> None:
    probe = subprocess.run([project_python, "-c", "import pytest_asyncio"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.fail(f"pytest-asyncio missing; fix with: {project_python} -m pip install pytest-asyncio", pytrace=False)
    eng = engine(project("engine_async"))
    summary = eng.run()
    assert statuses(summary) == {
        "tests/test_async.py::test_async_pass": Status.PASSED,
        "tests/test_async.py::test_async_fail": Status.FAILED,
    }


def test_results_stream_before_the_run_ends(engine, project) -> None:
    eng = engine(project("engine_fixtures"))
    seen: list[str] = []
    handle = eng.sup.run(__import__("tach_ls.engine.runs", fromlist=["RunRequest"]).RunRequest(), on_result=lambda r: seen.append(r.nodeid))
    streamed = list(handle.results())
    summary = handle.wait(60)
    assert streamed and [r.nodeid for r in streamed] == seen
    assert handle.total == len(summary.results) == 15


def test_thread_at_import_warns_naming_the_module(engine, project) -> None:
    eng = engine(project("engine_threads"))
    summary = eng.run()
    assert summary.exit_code == 0
    assert any("threadmod" in w and "spawn" in w for w in eng.sup.warnings), eng.sup.warnings


def test_collected_items_are_reported(engine, project) -> None:
    eng = engine(project("engine_basic"))
    eng.ready()
    ids = [nodeid for nodeid, _, _ in eng.sup.items]
    assert f"{BASIC}::test_param[2-3]" in ids and len(ids) == len(EXPECTED)


def test_collection_error_is_an_error_result(engine, project) -> None:
    root = project("engine_basic")
    (root / "tests" / "test_broken.py").write_text("import nonexistent_module_xyz\n\ndef test_never():\n    pass\n")
    eng = engine(root)
    summary = eng.run()
    broken = {r.nodeid: r for r in summary.results}["tests/test_broken.py"]
    assert broken.status is Status.ERROR and "nonexistent_module_xyz" in broken.longrepr
    assert summary.exit_code == 2
    assert eng.run(f"{BASIC}::test_pass").exit_code == 0


def test_spawn_mode_agrees_with_fork_mode(engine, project) -> None:
    """Two arms: the regression is a verdict that depends on forking (fresh interpreters are the reference)."""
    from tach_ls.engine.runs import RunMode

    forked = engine(project("engine_basic")).run()
    spawned = engine(project("engine_basic", "engine_basic_spawn"), mode=RunMode.SPAWN).run()
    assert statuses(spawned) == statuses(forked)
    assert {r.nodeid: r.message for r in spawned.results} == {r.nodeid: r.message for r in forked.results}
    fixtures = engine(project("engine_fixtures"), mode=RunMode.SPAWN).run()
    assert fixtures.exit_code == 0 and len(fixtures.results) == 15


def test_workers_warm_the_zygote_for_the_next_worker(engine, project) -> None:
    """What a test imports lazily from outside the workspace is imported by the zygote after the first run."""
    root = project("engine_basic")
    (root / "tests" / "test_lazy.py").write_text(
        "import sys\n\n\ndef test_lazy():\n    print('colorsys' in sys.modules)\n    import colorsys  # noqa: F401\n"
    )
    eng = engine(root)
    first = eng.result("tests/test_lazy.py::test_lazy")
    assert first.stdout == "False\n"
    wait_for(
        lambda: eng.result("tests/test_lazy.py::test_lazy").stdout == "True\n",
        "a worker forked after the zygote imported colorsys",
    )


def test_a_callback_that_raises_is_dropped_and_the_engine_goes_on(engine, project) -> None:
    """The regression: an exception in a caller's on_result (a reporter on a closed pipe) escaped
    into the supervisor's loop thread, which stopped; that run and every later one waited forever."""
    from tach_ls.engine.runs import RunRequest

    eng = engine(project("engine_basic"))
    eng.ready()
    calls: list[str] = []

    def broken(result: object) -> None:
        calls.append("called")
        raise BrokenPipeError("the reader left")

    summary = eng.sup.run(RunRequest(args=[f"{BASIC}::test_pass", f"{BASIC}::test_helper"]), on_result=broken).wait(60)
    assert set(statuses(summary).values()) == {Status.PASSED} and calls == ["called"]
    assert any("callback" in e and "BrokenPipeError" in e for e in summary.errors)
    assert statuses(eng.run(f"{BASIC}::test_pass")) == {f"{BASIC}::test_pass": Status.PASSED}
