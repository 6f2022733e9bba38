"""Runs as the editor sees them, with a fake engine: streaming, save-storm coalescing, cancel."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tach_ls import protocol
from tach_ls import runner as runner_module
from tach_ls.runner import Runner
from tach_ls.settings import Settings
from tach_ls.workspace import Workspace
from tests.parity import write_tree
from tests.unit.fake_engine import FakeEngine


class RecordingClient:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []
        self.diagnostics: dict[str, list[Any]] = {}

    def notify(self, method: str, params: Any) -> None:
        self.sent.append((method, params))

    def publish_diagnostics(self, uri: str, version: int | None, diagnostics: list[Any]) -> None:
        self.diagnostics[uri] = diagnostics

    def refresh_lenses(self) -> None:
        self.sent.append(("refresh", None))

    async def progress_begin(self, token: str, title: str) -> bool:
        return False

    def progress(self, token: str, kind: str, message: str, percentage: int | None = None) -> None:
        pass

    def show_error(self, message: str) -> None:
        self.sent.append(("error", message))

    def log_warning(self, message: str) -> None:
        self.sent.append(("warning", message))


def make(tmp_path: Path) -> tuple[Workspace, Runner, FakeEngine, RecordingClient]:
    write_tree(tmp_path, {"tests/test_a.py": "def test_a(): pass\ndef test_b(): pass\n"})
    engine = FakeEngine()
    client = RecordingClient()
    ws = Workspace(tmp_path, Settings(runOnSave="file"), client, lambda root, settings, on_state: engine)
    ws.build_index()
    return ws, Runner(ws), engine, client


async def wait_runs(engine: FakeEngine, count: int) -> None:
    started = await asyncio.get_running_loop().run_in_executor(None, engine.wait_runs, count)
    assert started, f"expected {count} runs, got {len(engine.runs)}"


async def save_run_done(runner: Runner) -> None:
    assert runner._save_task is not None
    await asyncio.wait_for(asyncio.shield(runner._save_task), 10)


async def test_results_stream_and_summary(tmp_path: Path) -> None:
    ws, runner, engine, client = make(tmp_path)
    task = asyncio.ensure_future(runner.run(["tests/test_a.py"], "command"))
    await wait_runs(engine, 1)
    engine.runs[0].finish({"tests/test_a.py::test_a": "passed", "tests/test_a.py::test_b": "failed"})
    summary = await asyncio.wait_for(task, 10)
    assert (summary["passed"], summary["failed"], summary["total"]) == (1, 1, 2)
    methods = [m for m, _ in client.sent]
    assert methods.index(protocol.RUN_STARTED) < methods.index(protocol.TEST_RESULT) < methods.index(protocol.RUN_FINISHED)
    assert ws.results["tests/test_a.py::test_b"].last.status == "failed"


async def test_save_storm_coalesces_to_one_running_and_one_queued(tmp_path: Path) -> None:
    """Ten saves while a run is in flight give exactly one more run, of the newest save."""
    ws, runner, engine, client = make(tmp_path)
    runner.on_save(["first"])
    await wait_runs(engine, 1)
    for i in range(10):
        runner.on_save([f"save-{i}"])
    assert len(engine.runs) == 1, "nothing starts while a save run is in flight"
    engine.runs[0].finish()
    await wait_runs(engine, 2)
    assert engine.runs[1].args == ["save-9"], "the newest save replaced the queued ones"
    engine.runs[1].finish()
    await save_run_done(runner)
    assert len(engine.runs) == 2 and runner.save_runs_started == 2


async def test_two_saves_without_overlap_give_two_runs(tmp_path: Path) -> None:
    """The other arm: saves that do not overlap a run are not coalesced."""
    ws, runner, engine, client = make(tmp_path)
    runner.on_save(["one"])
    await wait_runs(engine, 1)
    engine.runs[0].finish()
    await save_run_done(runner)
    runner.on_save(["two"])
    await wait_runs(engine, 2)
    assert [r.args for r in engine.runs] == [["one"], ["two"]]


async def test_cancel_clears_the_queue(tmp_path: Path) -> None:
    ws, runner, engine, client = make(tmp_path)
    runner.on_save(["first"])
    await wait_runs(engine, 1)
    runner.on_save(["queued"])
    runner.cancel()
    await save_run_done(runner)
    assert len(engine.runs) == 1 and engine.runs[0].handle.done


async def test_save_targets_follow_the_setting(tmp_path: Path) -> None:
    ws, runner, engine, client = make(tmp_path)
    write_tree(tmp_path, {"src/lib.py": "x = 1\n"})
    uri = ws.uri_of("tests/test_a.py")
    assert ws.save_targets(uri) == ["tests/test_a.py"]
    assert ws.save_targets(ws.uri_of("src/lib.py")) is None  # file mode: a non-test file runs nothing
    from dataclasses import replace

    ws.settings = replace(ws.settings, runOnSave="affected")
    assert ws.save_targets(ws.uri_of("src/lib.py")) == []  # affected: unknown users -> everything
    assert ws.save_targets(uri) == ["tests/test_a.py"]


async def test_affected_on_save_compares_the_saved_file_not_a_stale_buffer(tmp_path: Path) -> None:
    """Regression: a save's selection used the debounced buffer, which can still hold the old text."""
    from tach_ls.engine.results import Status, TestResult

    ws, runner, engine, client = make(tmp_path)
    result = TestResult("tests/test_a.py::test_b", Status.PASSED, 1.0, path="tests/test_a.py", line=2)
    result.coverage = {"tests/test_a.py": [2]}  # type: ignore[attr-defined]
    ws.record_impact([result, TestResult("tests/test_a.py::test_a", Status.PASSED, 1.0, path="tests/test_a.py", line=1)])
    old = (tmp_path / "tests/test_a.py").read_text()
    ws.update_buffer(ws.uri_of("tests/test_a.py"), old, 1)  # the buffer the debounce last indexed
    (tmp_path / "tests/test_a.py").write_text(old.replace("def test_b(): pass", "def test_b(): assert False"))
    targets = ws.affected_targets([str(tmp_path / "tests/test_a.py")])
    assert targets is not None and "tests/test_a.py::test_b" in targets


def test_the_engine_measures_coverage_when_impact_or_a_run_needs_it(tmp_path: Path) -> None:
    """runOnSave "affected" is only precise with per-test lines; a run asking for coverage restarts the engine once."""
    made: list[Settings] = []
    engines: list[FakeEngine] = []

    def factory(root: Path, settings: Settings, on_state: Any) -> FakeEngine:
        made.append(settings)
        engines.append(FakeEngine())
        return engines[-1]

    write_tree(tmp_path, {"tests/test_a.py": "def test_a(): pass\n"})
    ws = Workspace(tmp_path, Settings(runOnSave="file"), RecordingClient(), factory)
    ws.ensure_engine()
    assert made[-1].coverage is False
    ws.request_coverage()
    assert engines[0].shut and ws.engine is None
    ws.ensure_engine()
    assert made[-1].coverage is True
    ws.request_coverage()
    assert ws.engine is engines[1], "already measuring: no restart"
    fresh = Workspace(tmp_path, Settings(runOnSave="affected"), RecordingClient(), factory)
    fresh.ensure_engine()
    assert made[-1].coverage is True


class SlowProgressClient(RecordingClient):
    """A client that answers `window/workDoneProgress/create` only when told to."""

    def __init__(self) -> None:
        super().__init__()
        self.answer = asyncio.Event()
        self.asked = asyncio.Event()
        self.closed = asyncio.Event()
        self.progress_sent: list[str] = []

    async def progress_begin(self, token: str, title: str) -> bool:
        self.asked.set()
        await self.answer.wait()
        self.progress_sent.append("begin")
        return True

    def progress(self, token: str, kind: str, message: str, percentage: int | None = None) -> None:
        self.progress_sent.append(kind)
        if kind == "end":
            self.closed.set()


async def _click_with_slow_progress(tmp_path: Path) -> tuple[FakeEngine, SlowProgressClient, asyncio.Future[Any]]:
    """A run of one test started through a Runner whose client holds the progress token."""
    write_tree(tmp_path, {"tests/test_a.py": "def test_a(): pass\n"})
    engine, client = FakeEngine(), SlowProgressClient()
    ws = Workspace(tmp_path, Settings(), client, lambda root, settings, on_state: engine)
    ws.build_index()
    task = asyncio.ensure_future(Runner(ws).run(["tests/test_a.py::test_a"], "command"))
    await wait_runs(engine, 1)
    return engine, client, task


async def test_a_run_does_not_wait_for_the_progress_token_and_closes_it_when_it_comes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner_module._Progress, "DELAY_S", 0.0)  # a run long enough to get a progress
    engine, client, task = await _click_with_slow_progress(tmp_path)
    await asyncio.wait_for(client.asked.wait(), 10)
    engine.runs[0].finish({"tests/test_a.py::test_a": "passed"})
    summary = await asyncio.wait_for(task, 10)  # answered while the client still holds the token
    assert summary["passed"] == 1 and client.progress_sent == []
    client.answer.set()
    await asyncio.wait_for(client.closed.wait(), 10)
    assert client.progress_sent == ["begin", "end"]


async def test_a_run_over_before_the_progress_delay_shows_no_progress(tmp_path: Path) -> None:
    """The other arm: a click's run, done in milliseconds, never asks the client for a progress token."""
    engine, client, task = await _click_with_slow_progress(tmp_path)
    engine.runs[0].finish({"tests/test_a.py::test_a": "passed"})
    summary = await asyncio.wait_for(task, 10)
    assert summary["passed"] == 1
    assert not client.asked.is_set() and client.progress_sent == []
