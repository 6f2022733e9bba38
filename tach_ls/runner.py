"""Runs as the editor sees them: start, stream, progress, finish, cancel, run on save.

One `Runner` per workspace. A run streams `tach/runStarted`, one
`tach/testResult` per finished test (and refreshed diagnostics), `$/progress`
with counts, then `tach/runFinished`; the command's response is the
contract's summary. Saves are coalesced: at most one save-triggered run in
flight and one queued, a newer save replacing the queued one.

A debug run (`debug`) is the same run of one test with reason "debug", left
going in the background: the command answers as soon as the worker listens
for the debugger, and the run's end still comes as `tach/runFinished`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from typing import Any

from tach_ls import protocol
from tach_ls.workspace import Workspace

log = logging.getLogger("tach_ls.runner")
_tokens = itertools.count(1)


class DebugFailed(Exception):
    """A debug run gives no address to attach to; the message says why (and how to fix it)."""


class Runner:
    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.handles: dict[int, Any] = {}
        self._save_task: asyncio.Task[Any] | None = None
        self._save_queued: list[str] | None = None
        self.save_runs_started = 0  # observable for tests of coalescing
        self._record_lock = asyncio.Lock()
        self._pending_records: set[asyncio.Task[Any]] = set()
        self._debug_runs: set[asyncio.Task[Any]] = set()  # debug runs go on after their command answered

    # -- one run ------------------------------------------------------------------------
    async def run(
        self, args: list[str], reason: str, coverage: bool = False, *, debug: bool = False,
        on_handle: Callable[[Any], None] | None = None,
    ) -> dict[str, Any]:
        """Run `args` (node ids or paths; [] is everything), streaming results; `coverage` sends
        this run's gutters even when the `coverage` setting is off. `debug`: see `debug()`;
        `on_handle` gets the engine's handle as soon as the run is queued."""
        from tach_ls.engine.runs import RunRequest

        ws = self.ws
        loop = asyncio.get_running_loop()
        ws.loop = loop
        if coverage:
            ws.request_coverage()
        engine = ws.ensure_engine()
        progress = _Progress(ws, f"tach-ls-run-{next(_tokens)}")
        finished = 0
        results: list[dict[str, Any]] = []
        touched: set[str] = set()
        run_id_box: list[int] = [0]

        def on_result_loop(result: Any) -> None:
            nonlocal finished
            finished += 1
            stored = ws.record(result)
            touched.add(stored.rel)
            uri = ws.uri_of(stored.rel)
            msg = protocol.TestResultMsg(
                run_id_box[0], result.nodeid, result.status.value, result.duration_ms, result.message, uri, stored.last.line,
                stored.last.output, (result.longrepr or "")[-8000:],
            )
            results.append({k: msg.__dict__[k] for k in ("nodeid", "status", "duration_ms", "message", "uri", "line")})
            ws.client.notify(protocol.TEST_RESULT, protocol.payload(msg))
            ws.publish(stored.rel)
            total = getattr(handle, "total", None)
            progress.report(finished, total)

        def on_result(result: Any) -> None:  # the engine's thread
            loop.call_soon_threadsafe(on_result_loop, result)

        ws.changed_since_run.clear()
        request = RunRequest(args=args, workers=ws.settings.workers, timeout=ws.settings.timeout, debug=debug)
        handle = engine.run(request, on_result=on_result)
        run_id_box[0] = handle.run_id
        self.handles[handle.run_id] = handle
        if on_handle is not None:
            on_handle(handle)
        ws.client.notify(protocol.RUN_STARTED, protocol.payload(protocol.RunStarted(handle.run_id, ws.folder_uri, args, reason)))
        waiting = loop.run_in_executor(None, handle.wait)
        cancelled_by_client = False
        try:
            # $/cancelRequest can land while we wait: stop the workers, still report the
            # run's end (results already received stay), then answer as cancelled. Creating
            # the progress token is a round trip to the client: it goes on beside the run,
            # not in front of it, and only for a run that lasts (see _Progress).
            progress.start(f"Running {len(args)} target(s)")
            summary = await asyncio.shield(waiting)
        except asyncio.CancelledError:
            cancelled_by_client = True
            handle.cancel()
            summary = await waiting
        finally:
            self.handles.pop(handle.run_id, None)
        await asyncio.sleep(0)  # let results queued by the engine's thread land first
        counts = dict(summary.counts)
        finished_msg = protocol.RunFinished(
            handle.run_id,
            passed=counts.get("passed", 0),
            failed=counts.get("failed", 0),
            skipped=counts.get("skipped", 0),
            errors=sum(counts.get(s, 0) for s in ("error", "crashed", "timeout")),
            total=sum(counts.values()),
            duration_ms=summary.duration_s * 1000,
            cancelled=summary.cancelled,
            counts=counts,
        )
        ws.client.notify(protocol.RUN_FINISHED, protocol.payload(finished_msg))
        ws.log_engine_warnings()
        progress.end(f"{finished_msg.passed} passed, {finished_msg.failed} failed")
        ws.client.refresh_lenses()
        if getattr(summary, "coverage", None) is not None and (coverage or ws.settings.coverage):
            from tach_ls import coverage_data

            reports = await loop.run_in_executor(None, coverage_data.analyze, ws.index.root, summary.coverage.files)
            for msg in ws.coverage_messages(summary.coverage, reports):
                ws.client.notify(protocol.COVERAGE, protocol.payload(msg))
        self._record_later(list(summary.results))
        if cancelled_by_client:
            raise asyncio.CancelledError()
        out = protocol.payload(finished_msg)
        out["results"] = results
        out["exit_code"] = summary.exit_code
        out["engine_errors"] = list(summary.errors)
        return out

    async def debug(self, nodeid: str) -> dict[str, Any]:
        """Start a debug run of `nodeid`; `{"host", "port", "nodeid", "run_id"}` once its worker listens.

        Raises `DebugFailed` with the engine's reason (debugpy missing in the
        project's interpreter, an unknown test...) when it never will; the
        run still reports its end. Cancelling this call cancels the run.
        """
        loop = asyncio.get_running_loop()
        queued: asyncio.Future[Any] = loop.create_future()
        run = loop.create_task(self.run([nodeid], "debug", debug=True, on_handle=queued.set_result))
        self._debug_runs.add(run)
        run.add_done_callback(self._debug_done)
        try:
            await asyncio.wait({queued, run}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            run.cancel()
            raise
        if not queued.done():
            run.result()  # it failed before the engine took it (no usable interpreter...): that error
            raise DebugFailed(f"the debug run of {nodeid} ended before it started")
        handle = queued.result()
        if getattr(handle, "debug_address", None) is None:
            handle.cancel()
            raise DebugFailed("this workspace's engine cannot debug tests")
        try:
            address = await asyncio.wrap_future(handle.debug_address)
        except asyncio.CancelledError:
            handle.cancel()
            raise
        except RuntimeError as exc:  # the engine's DebugError
            raise DebugFailed(str(exc)) from None
        return {"host": address.host, "port": address.port, "nodeid": nodeid, "run_id": handle.run_id}

    def _debug_done(self, task: asyncio.Task[Any]) -> None:
        self._debug_runs.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("debug run failed", exc_info=task.exception())

    RECORD_DELAY_S = 0.05

    def _record_later(self, results: list[Any]) -> None:
        """Record the run for impact analysis after answering: off the click's critical path, in order.

        Started a moment later, not at once: the recording thread would take
        the GIL while pygls still serializes the answer and the notifications
        before it (that cost a click ~1 ms through the client).
        """

        async def record() -> None:
            async with self._record_lock:
                await asyncio.sleep(self.RECORD_DELAY_S)
                await asyncio.get_running_loop().run_in_executor(None, self.ws.record_impact, results)

        task = asyncio.get_running_loop().create_task(record())
        self._pending_records.add(task)
        task.add_done_callback(self._pending_records.discard)

    @property
    def pending_records(self) -> list[asyncio.Task[Any]]:
        return list(self._pending_records)

    def cancel(self, run_id: int | None = None) -> list[int]:
        ids = [run_id] if run_id is not None else list(self.handles)
        for rid in ids:
            handle = self.handles.get(rid)
            if handle is not None:
                handle.cancel()
        self._save_queued = None
        return [rid for rid in ids if rid in self.handles]

    # -- run on save -------------------------------------------------------------------------
    def on_save(self, args: list[str] | None) -> None:
        """Schedule a save-triggered run of `args` ([] = everything), coalescing with what is running or queued."""
        if args is None:
            return
        if self._save_task is not None and not self._save_task.done():
            self._save_queued = args  # replaces an older queued save
            return
        self._start_save_run(args)

    def _start_save_run(self, args: list[str]) -> None:  # [] runs everything
        self.save_runs_started += 1
        self._save_task = asyncio.get_running_loop().create_task(self._save_run(args))

    async def _save_run(self, args: list[str]) -> None:
        try:
            await self.run(args, "save")
        except Exception:  # a failed save run must not stop the next one
            log.exception("run on save failed")
        queued, self._save_queued = self._save_queued, None
        if queued is not None:
            self._start_save_run(queued)


class _Progress:
    """`$/progress` for one run, when the client supports work-done progress.

    Only a run still going after `DELAY_S` gets one: a click's run is over in
    milliseconds, and a progress bar that flashes for that long is noise
    (and its create request, a round trip to the client, was a share of the
    click's time).
    """

    DELAY_S = 0.25

    def __init__(self, ws: Workspace, token: str) -> None:
        self.ws = ws
        self.token = token
        self.active = False
        self.ended: str | None = None  # the end message, once the run is over
        self.task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    def start(self, title: str) -> None:
        def begin() -> None:
            if self.ended is None:
                self.task = asyncio.ensure_future(self._begin(title))

        self._timer = asyncio.get_running_loop().call_later(self.DELAY_S, begin)

    async def _begin(self, title: str) -> None:
        try:
            active = await self.ws.client.progress_begin(self.token, title)
        except Exception:  # the client refused or does not support it: runs go on without
            return
        if active and self.ended is not None:  # the run finished first: close what the client opened
            self.ws.client.progress(self.token, "end", self.ended)
            return
        self.active = active

    def report(self, done: int, total: int | None) -> None:
        if self.active:
            pct = int(done * 100 / total) if total else None
            self.ws.client.progress(self.token, "report", f"{done}/{total or '?'} tests", pct)

    def end(self, message: str) -> None:
        self.ended = message
        if self._timer is not None:
            self._timer.cancel()
        if self.active:
            self.ws.client.progress(self.token, "end", message)
            self.active = False
