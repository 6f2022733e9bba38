"""Debug runs as the editor sees them, with a fake engine: the address hand-off, failures, cancel.

The real worker, debugpy and a DAP client are in ``tests/engine/test_debug.py``
and ``tests/e2e/test_server.py``; here the engine's side is driven by hand
(``RunHandle._debug_listening`` / ``_debug_failed``) so each order of events
is deterministic.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tach_ls import protocol
from tach_ls.engine.runs import DebugAddress
from tach_ls.runner import DebugFailed, Runner
from tests.unit.fake_engine import FakeEngine
from tests.unit.test_runner import RecordingClient, make, wait_runs

NODEID = "tests/test_a.py::test_a"


async def start_debug(tmp_path: Path) -> tuple[asyncio.Task[dict[str, object]], Runner, FakeEngine, RecordingClient]:
    ws, runner, engine, client = make(tmp_path)
    answer = asyncio.ensure_future(runner.debug(NODEID))
    await wait_runs(engine, 1)
    return answer, runner, engine, client


async def run_ended(runner: Runner) -> None:
    """The debug run's own task (it goes on after the answer) has reported its end."""
    await asyncio.wait_for(asyncio.gather(*list(runner._debug_runs), return_exceptions=True), 10)


async def test_answers_the_address_as_soon_as_the_worker_listens_and_the_run_goes_on(tmp_path: Path) -> None:
    answer, runner, engine, client = await start_debug(tmp_path)
    run = engine.runs[0]
    assert run.args == [NODEID]
    assert not answer.done(), "no answer before the worker listens"
    run.handle._debug_listening(DebugAddress("127.0.0.1", 5678))
    reply = await asyncio.wait_for(answer, 10)
    assert reply == {"host": "127.0.0.1", "port": 5678, "nodeid": NODEID, "run_id": run.run_id}
    started = [p for m, p in client.sent if m == protocol.RUN_STARTED]
    assert [p["reason"] for p in started] == ["debug"]
    assert protocol.RUN_FINISHED not in [m for m, _ in client.sent], "the run outlives the answer"
    run.finish({NODEID: "passed"})
    await run_ended(runner)
    [result] = [p for m, p in client.sent if m == protocol.TEST_RESULT]
    assert (result["nodeid"], result["status"]) == (NODEID, "passed")


async def test_an_engine_failure_is_the_whole_message_and_the_run_still_ends(tmp_path: Path) -> None:
    answer, runner, engine, client = await start_debug(tmp_path)
    reason = "debugpy is not installed in the project's interpreter /venv/bin/python: install it with `...`"
    engine.runs[0].handle._debug_failed(reason)
    engine.runs[0].finish({NODEID: "error"})
    with pytest.raises(DebugFailed) as failed:
        await asyncio.wait_for(answer, 10)
    assert str(failed.value) == reason
    await run_ended(runner)
    assert protocol.RUN_FINISHED in [m for m, _ in client.sent]


async def test_cancelling_the_call_while_waiting_cancels_the_run(tmp_path: Path) -> None:
    answer, runner, engine, client = await start_debug(tmp_path)
    answer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await answer
    await run_ended(runner)
    assert engine.runs[0].handle.done
    [finished] = [p for m, p in client.sent if m == protocol.RUN_FINISHED]
    assert finished["cancelled"] is True
