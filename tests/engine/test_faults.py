"""Every way a worker or a zygote layer can die, and that the next run still works.

Parametrized over setup/call/teardown as pytest-xdist's ``test_crashing_item``.
Each case asserts the reported status, that the output the test printed before
dying is kept, and then that a plain passing test runs on the same engine.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tach_ls.engine.results import Status
from tach_ls.engine.runs import RunRequest
from tach_ls.engine.supervisor import EngineState

from .conftest import (
    RUN_BOUND,
    Engine,
    EngineFactory,
    copy_project,
    processes_mentioning,
    statuses,
    wait_for,
)

pytestmark = pytest.mark.engine

FAULTS = "tests/test_faults.py"
OK = f"{FAULTS}::test_ok_after"
PHASES = ("setup", "call", "teardown")
DEATHS = {"exit": "exited with code 7", "kill": "killed by SIGKILL", "segv": "killed by SIGSEGV"}


@pytest.fixture(scope="module")
def faults(module_engine: EngineFactory, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    root = copy_project("engine_faults", tmp_path_factory.mktemp("faults"))
    return module_engine(root, timeout=1.0)


def assert_next_run_works(eng: Engine) -> None:
    summary = eng.run(OK)
    assert statuses(summary) == {OK: Status.PASSED}, summary


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("kind", sorted(DEATHS))
def test_worker_death_is_crashed_never_passed(faults: Engine, kind: str, phase: str) -> None:
    """The regression: a worker that dies without reporting counted as passed, or hung the run."""
    result = faults.result(f"{FAULTS}::test_fault[{kind}-{phase}]")
    assert result.status is Status.CRASHED
    assert DEATHS[kind] in result.message and f"during {phase}" in result.message
    assert f"last words before {kind} in {phase}" in result.stdout
    assert f"stderr before {kind}" in result.stderr
    assert_next_run_works(faults)


@pytest.mark.parametrize("phase", PHASES)
def test_timeout_kills_the_group_and_shows_the_stack(faults: Engine, phase: str) -> None:
    result = faults.result(f"{FAULTS}::test_fault[hang-{phase}]")
    assert result.status is Status.TIMEOUT
    assert result.message == f"timed out after 1s during {phase}"
    assert "in _do" in result.longrepr and "test_faults.py" in result.longrepr  # faulthandler's dump
    assert "last words before hang" in result.stdout
    child = int(result.stdout.split("child pid ", 1)[1].split()[0])
    wait_for(lambda: not Path(f"/proc/{child}").exists(), "the test's own child process to be killed")
    assert_next_run_works(faults)


def test_a_crash_mid_batch_requeues_the_rest(faults: Engine) -> None:
    """A wide run (one batch, one worker): the crash costs one test, not the batch."""
    summary = faults.run(keyword="test_ok_before or kill-call or test_ok_after", workers=1)
    assert statuses(summary) == {
        f"{FAULTS}::test_fault[kill-call]": Status.CRASHED,
        f"{FAULTS}::test_ok_before": Status.PASSED,
        f"{FAULTS}::test_ok_after": Status.PASSED,
    }


def test_with_coverage_results_held_back_come_before_a_timeout_and_a_crash(
    module_engine: EngineFactory, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """With coverage on, results are recorded in batches (``RunScheduler.record_held``): a timeout or a crash
    after them must not overtake them, lose them, or lose their lines; every ring is released, and the next
    run works."""
    root = copy_project("engine_faults", tmp_path_factory.mktemp("faults-coverage"))
    eng = module_engine(root, timeout=1.0, coverage=True)
    order: list[str] = []
    names = ["test_ok_before", "test_fault[hang-call]", "test_ok_after", "test_fault[kill-call]"]  # a pass before each
    wide = RunRequest(args=[f"{FAULTS}::{name}" for name in names], workers=1)
    summary = eng.sup.run(wide, on_result=lambda r: order.append(r.nodeid.rsplit("::", 1)[1])).wait(RUN_BOUND)
    by_name = {r.nodeid.rsplit("::", 1)[1]: r for r in summary.results}
    assert {name: r.status for name, r in by_name.items()} == {
        "test_fault[hang-call]": Status.TIMEOUT,
        "test_fault[kill-call]": Status.CRASHED,
        "test_ok_before": Status.PASSED,
        "test_ok_after": Status.PASSED,
    }
    assert order == names
    for name in ("test_ok_before", "test_ok_after"):
        assert not by_name[name].coverage_partial and by_name[name].coverage, name
    for name in ("test_fault[hang-call]", "test_fault[kill-call]"):
        assert by_name[name].coverage_partial and by_name[name].coverage == {}, name
    assert_next_run_works(eng)
    assert eng.sup._coverage is not None and not eng.sup._coverage.rings  # every ring released


def test_output_is_capped_with_a_marker(faults: Engine) -> None:
    result = faults.result(f"{FAULTS}::test_big_output")
    assert result.status is Status.PASSED
    assert len(result.stdout) < 60_000 and "output cut" in result.stdout


def test_collected_layer_dying_mid_run(faults: Engine) -> None:
    """The test kills its own zygote: in-flight becomes error, the layer is rebuilt, the next run works."""
    result = faults.result(f"{FAULTS}::test_kill_zygote")
    assert result.status is Status.ERROR and "zygote died" in result.message
    assert any(s.state == EngineState.REBUILDING for s in faults.states)
    assert_next_run_works(faults)


def test_base_layer_killed_mid_run(faults: Engine) -> None:
    faults.ready()
    handle = faults.sup.run(RunRequest(args=[f"{FAULTS}::test_sleep_long"], timeout=60))
    wait_for(lambda: any(s.current for s in faults.sup._workers.values()), "the test to start")
    base = faults.sup._layers.base
    assert base is not None
    os.kill(base.pid, signal.SIGKILL)
    summary = handle.wait(60)
    assert statuses(summary) == {f"{FAULTS}::test_sleep_long": Status.ERROR}
    assert_next_run_works(faults)


def test_cancel_kills_the_worker(faults: Engine) -> None:
    faults.ready()
    handle = faults.sup.run(RunRequest(args=[f"{FAULTS}::test_sleep_long"], timeout=60))
    pid = wait_for(lambda: next((s.pid for s in faults.sup._workers.values() if s.current), None), "the test to start")
    handle.cancel()
    summary = handle.wait(30)
    assert summary.cancelled and summary.exit_code == 2
    wait_for(lambda: not Path(f"/proc/{pid}").exists() or _is_zombie(pid), "the cancelled worker to die")
    assert_next_run_works(faults)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_zygote_dies_with_its_parent(project_python: str, tmp_path: Path) -> None:
    """PR_SET_PDEATHSIG: kill -9 the supervisor's process; no zygote or worker survives it."""
    root = copy_project("engine_faults", tmp_path)
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from pathlib import Path
        from tach_ls.engine.supervisor import EngineConfig, Supervisor
        from tach_ls.engine.runs import RunRequest
        sup = Supervisor(EngineConfig(root=Path({str(root)!r}), python=Path({project_python!r})))
        sup.start()
        sup.wait_ready(60)
        sup.run(RunRequest(args=["tests/test_faults.py::test_sleep_long"]))
        print(sup.rundir, flush=True)
        time.sleep(600)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        rundir = proc.stdout.readline().strip()
        assert rundir, proc.stderr.read() if proc.poll() is not None else "no rundir printed"
        wait_for(lambda: len(processes_mentioning(rundir)) >= 3, "base, collected layer and a worker")
    finally:
        proc.kill()
        proc.communicate()
    wait_for(lambda: not processes_mentioning(rundir), "every engine process to die with the supervisor")
    shutil.rmtree(rundir)  # the killed supervisor could not


def test_a_layer_that_keeps_dying_fails_after_bounded_restarts(engine: EngineFactory, project) -> None:
    root = project("engine_basic")
    (root / "tests" / "conftest.py").write_text("import os\nos._exit(3)\n")
    eng = engine(root, max_restarts=2)
    summary = eng.run()
    assert summary.exit_code == 3
    assert eng.sup.status.state == EngineState.FAILED and "gave up after 2 restarts" in eng.sup.status.detail
    rebuilding = [s for s in eng.states if s.state == EngineState.REBUILDING]
    assert len(rebuilding) >= 2


def test_interpreter_without_pytest_is_a_clear_error(engine: EngineFactory, project, tmp_path: Path) -> None:
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    eng = engine(project("engine_basic"), python=python)
    summary = eng.run()
    assert summary.exit_code == 4
    assert eng.sup.status.state == EngineState.FAILED
    assert f"pytest is not importable in {python}" in eng.sup.status.detail
    assert "pip install pytest" in eng.sup.status.detail


def test_spawn_mode_faults(engine: EngineFactory, project) -> None:
    """Spawn mode's workers are fresh interpreters: the same fault statuses, the same recovery."""
    from tach_ls.engine.runs import RunMode

    eng = engine(project("engine_faults"), mode=RunMode.SPAWN, timeout=1.0)
    crashed = eng.result(f"{FAULTS}::test_fault[segv-call]")
    assert crashed.status is Status.CRASHED and "SIGSEGV" in crashed.message
    assert "last words before segv in call" in crashed.stdout
    hung = eng.result(f"{FAULTS}::test_fault[hang-teardown]")
    assert hung.status is Status.TIMEOUT and "in _do" in hung.longrepr
    assert_next_run_works(eng)


def test_a_zygote_that_hangs_while_collecting_fails_with_a_reason(engine: EngineFactory, project) -> None:
    root = project("engine_basic")
    (root / "tests" / "conftest.py").write_text("import time\ntime.sleep(600)\n")
    eng = engine(root, start_timeout=1.0)
    summary = eng.run()
    assert summary.exit_code == 3
    assert eng.sup.status.state == EngineState.FAILED and "within 1s" in eng.sup.status.detail
    (root / "tests" / "conftest.py").write_text("")
    eng.sup.config.start_timeout = 120.0  # the fixed project gets the usual time to start, even on a busy machine
    assert eng.run("tests/test_basic.py::test_helper").exit_code == 0, "a run after the fix starts afresh"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_interrupts_the_command_line(project, project_python, sig: signal.Signals) -> None:
    root = project("engine_faults")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    code = "import sys; from tach_ls.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "run", "--python", project_python, f"{FAULTS}::test_sleep_long"],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    assert "1 test selected" in proc.stdout.readline()
    wait_for(lambda: len(processes_mentioning(str(root))) >= 3, "base, collected layer and the test's worker")
    connect = processes_mentioning(str(root))[0][1].split('"connect": "', 1)[1].split('"', 1)[0]
    rundir = os.path.dirname(connect)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2, out + err
    assert "interrupted" in out
    wait_for(lambda: not processes_mentioning(str(root)), "every engine process to end with the command")
    assert not Path(rundir).exists(), "the command removed its temporary folder"


@pytest.mark.parametrize("when", ["idle", "given-a-job"])
def test_standby_killed(faults: Engine, when: str) -> None:
    """The supervisor writes a click's job straight into the standby's pipe. Regression: a dead standby taking
    the click down with it, or leaving the supervisor holding its pipe. Arms: killed while it waits (the click
    must fall back to a fresh worker and pass), killed right after its job was written (the click reports
    the death, and the next one passes)."""
    faults.ready()
    assert faults.sup.standby_ready.wait(30), "no standby came up"
    standby = faults.sup._layers.standby
    assert standby is not None
    pid = standby[0]
    if when == "idle":
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: faults.sup._layers.standby is None or faults.sup._layers.standby[0] != pid, "its exit to be seen")
        assert statuses(faults.run(OK)) == {OK: Status.PASSED}
    else:
        os.kill(pid, signal.SIGSTOP)  # it cannot read its job before it dies
        handle = faults.sup.run(RunRequest(args=[OK]))
        wait_for(lambda: any(s.pid == pid for s in list(faults.sup._workers.values())), "the job to go to the standby")
        os.kill(pid, signal.SIGKILL)
        summary = handle.wait(60)
        result = summary.results[0]
        assert result.status is Status.CRASHED and "before its first test" in result.message, result
    assert_next_run_works(faults)
