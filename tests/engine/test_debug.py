"""Debug runs through a real zygote: debugpy listens in the worker, a real DAP client attaches.

The client (``tests/dap.py``) does what an editor's debugger does over TCP:
initialize, attach, a breakpoint, configurationDone. That releases the
worker's ``wait_for_client()``; the test stops at the breakpoint, a variable
is read, it continues, and its result streams as in any run. Also: a run
cancelled while it waits for the debugger, the wrong number of tests, spawn
mode, and an interpreter without debugpy (a real venv, not a patched import).
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tach_ls.engine.results import Status
from tach_ls.engine.runs import DebugAddress, DebugError, RunHandle, RunRequest
from tests.dap import attach_and_stop, venv_without_debugpy

from .conftest import RUN_BOUND, Engine, EngineFactory, statuses, wait_for

pytestmark = pytest.mark.engine

TEST = "tests/test_basic.py::test_pass"
ASSERT_LINE = 11  # `assert per_test == "tok-test"` in engine_basic's tests/test_basic.py


@pytest.fixture(autouse=True)
def require_debugpy(project_python: str) -> None:
    """Fails loudly (never skips) when the project interpreter has no debugpy: CI would pass nothing."""
    probe = subprocess.run([project_python, "-c", "import debugpy"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.fail(f"debug tests need debugpy in {project_python}; fix with: bash scripts/install.sh --test "
                    f"(or {project_python} -m pip install debugpy)", pytrace=False)  # fmt: skip


def address_of(handle: RunHandle) -> DebugAddress:
    assert handle.debug_address is not None, "a debug run's handle has an address future"
    return handle.debug_address.result(RUN_BOUND)


def debug_to_the_end(eng: Engine, root: Path) -> Any:
    """Debug TEST: stop at its assert, read a variable, continue; the run's summary."""
    handle = eng.sup.run(RunRequest(args=[TEST], debug=True))
    address = address_of(handle)
    client, stopped = attach_and_stop(address.host, address.port, str(root / "tests" / "test_basic.py"), ASSERT_LINE)
    try:
        assert stopped["body"]["reason"] == "breakpoint"
        thread = stopped["body"]["threadId"]
        assert client.evaluate_in_top_frame(thread, "per_test") == "'tok-test'", "stopped inside the test, fixtures set up"
        client.request("continue", {"threadId": thread})
        summary = handle.wait(RUN_BOUND)
        client.disconnect_after_exit()
    finally:
        client.close()
    return summary


@pytest.mark.parametrize("isolation", ["auto", "off"])
def test_debugger_attaches_stops_at_a_breakpoint_and_the_result_streams(
    engine: EngineFactory, project: Any, isolation: str
) -> None:
    """Two arms: with isolation on, the standby sits in a network namespace the editor cannot reach,
    so a debug run must fork a fresh worker on the host's network (the regression: an address that
    refuses every connection); with isolation off the standby itself may serve the debug run."""
    root = project("engine_basic")
    eng = engine(root, isolation=isolation)
    eng.ready()
    normal = eng.result(TEST)
    summary = debug_to_the_end(eng, root)
    assert statuses(summary) == {TEST: Status.PASSED}
    [result] = summary.results
    assert "net" not in result.isolation, "a debug worker keeps the host's network"
    assert set(result.isolation) == set(normal.isolation) - {"net"}, "and every other isolation feature"
    assert eng.result(TEST).status is Status.PASSED, "the next run works"


def test_cancel_while_waiting_for_the_debugger_kills_the_worker(engine: EngineFactory, project: Any) -> None:
    eng = engine(project("engine_basic"))
    eng.ready()
    handle = eng.sup.run(RunRequest(args=[TEST], debug=True))
    address = address_of(handle)
    pid = wait_for(lambda: next((s.pid for s in eng.sup._workers.values() if s.debug and s.pid), None), "the debug worker")
    handle.cancel()
    summary = handle.wait(RUN_BOUND)
    assert summary.cancelled and summary.exit_code == 2
    assert TEST not in statuses(summary), "a test that never started has no result"
    wait_for(lambda: not Path(f"/proc/{pid}").exists() or _is_zombie(pid), "the waiting worker to die")
    wait_for(lambda: not _accepts(address), "debugpy's adapter to let its port go")
    assert eng.result(TEST).status is Status.PASSED, "the next run works"


def test_a_debug_run_takes_exactly_one_known_test(engine: EngineFactory, project: Any) -> None:
    eng = engine(project("engine_basic"))
    eng.ready()
    for args, expected in (
        (["tests/test_basic.py::test_nope"], "not found: tests/test_basic.py::test_nope"),
        (["tests/test_basic.py"], "a debug run takes exactly one test"),
    ):
        handle = eng.sup.run(RunRequest(args=args, debug=True))
        with pytest.raises(DebugError, match=expected):
            address_of(handle)
        assert handle.wait(RUN_BOUND).exit_code == 4
    assert eng.result(TEST).status is Status.PASSED, "the next run works"


def test_spawn_mode_debugs_in_the_batch_interpreter(engine: EngineFactory, project: Any) -> None:
    root = project("engine_basic")
    eng = engine(root, mode="spawn")
    eng.ready()
    summary = debug_to_the_end(eng, root)
    assert statuses(summary) == {TEST: Status.PASSED}


def test_missing_debugpy_is_a_clear_error(engine: EngineFactory, project: Any, project_python: str, tmp_path: Path) -> None:
    """A real interpreter without debugpy (a venv holding only pytest): the test is an error naming
    the interpreter and the fix, the address future fails with the same words, the engine goes on."""
    python = venv_without_debugpy(project_python, tmp_path / "venv")
    eng = engine(project("engine_basic"), python=python)
    eng.ready()
    handle = eng.sup.run(RunRequest(args=[TEST], debug=True))
    with pytest.raises(DebugError) as failed:
        address_of(handle)
    message = str(failed.value)
    assert message.startswith("debugpy is not installed in the project's interpreter"), message
    assert f"{python} -m pip install debugpy" in message, message
    [result] = handle.wait(RUN_BOUND).results
    assert (result.status, result.message) == (Status.ERROR, message)
    assert (result.path, result.line) == ("tests/test_basic.py", 10)
    assert eng.result(TEST).status is Status.PASSED, "the next run works"


def _accepts(address: DebugAddress) -> bool:
    try:
        with socket.create_connection((address.host, address.port), timeout=1):
            return True
    except OSError:
        return False


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
