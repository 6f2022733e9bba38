"""Runs on the supervisor's loop: selection, batches onto workers, results, faults, timeouts.

Server side. ``RunScheduler`` is mixed into ``Supervisor`` so that worker
messages dispatch by name (``on_test_finished``...) on the same object as the
layer messages. It owns the life of a run: local or remote selection, the
click that starts before its freshness check (undone if the code changed),
batches handed to workers as slots free up, each result streamed (with
coverage on, in batches at most 15 ms apart: ``record_held``), a debug run's
address handed to its caller, and every way a worker can end: reported,
crashed (signal or ``os._exit``), timed out (stacks dumped by faulthandler,
then the process group killed), cancelled, or lost with its zygote.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import TYPE_CHECKING, Any, NamedTuple

from . import procutil, worker_status
from .results import NodeId, Status, TestResult
from .runs import (
    TARGETED_LIMIT,
    DebugAddress,
    Run,
    RunMode,
    WorkerSlot,
    fault_result,
    make_batches,
    remove_files,
    status_words,
)
from .status import EngineConfig, EngineState, EngineStatus

if TYPE_CHECKING:
    from .coverage_feed import CoverageFeed
    from .layers import LayerSet

class WorkerPosition(NamedTuple):
    """A live worker: its pid, the test it is in (None between tests), and the phase."""

    pid: int
    nodeid: NodeId | None
    phase: str


BETWEEN = "between tests"
"""A worker's phase after a test's result and before the next test's setup."""
TIMEOUT_DUMP_GRACE = 0.3
"""Seconds between asking a timed-out worker for its stacks and killing its process group."""
HELD_RESULTS = 24
HELD_SECONDS = 0.015
"""With coverage on, results are recorded in batches of up to ``HELD_RESULTS``, none held longer than this
(``RunScheduler.record_held``). Click's suite, two workers on two cores: a quarter less overhead than one at a
time; larger batches gained nothing more."""


class RunScheduler:
    """The run and worker half of ``Supervisor`` (a mixin: the state lives on the supervisor)."""

    config: EngineConfig
    status: EngineStatus
    collect_errors: dict[NodeId, str]
    standby_ready: threading.Event
    _item_ids: set[NodeId]
    _runs: list[Run]
    _workers: dict[int, WorkerSlot]
    _layers: LayerSet
    _stopping: bool
    _coverage: CoverageFeed | None
    _held: list[tuple[TestResult, WorkerSlot, Any]]
    """Results not recorded yet (``record_held``): each with its slot and its coverage test id."""
    _held_since: float

    def on_selected(self, msg: dict[str, Any]) -> None:
        run = self._find_run(int(msg["req"]))
        if run is None or run.phase != "selecting":
            return
        self._selected(run, msg["nodeids"], msg.get("missing", []), msg.get("error", ""))

    def _select_locally(self, run: Run) -> bool:
        """A click names exact node ids: select from the item index without asking the zygote."""
        request = run.request
        if request.keyword or request.markexpr or not request.args:
            return False
        ids = [self._layers.to_rootdir(a) for a in request.args]
        if not all(i in self._item_ids for i in ids):
            return False
        run.phase = "selecting"
        self._selected(run, list(dict.fromkeys(ids)), [], "")
        return True

    def _selected(self, run: Run, nodeids: list[NodeId], missing: list[str], error: str) -> None:
        if error:
            run.errors.append(error)
            run.exit_override = 4
            self._finish(run)
            return
        for arg in missing:
            run.errors.append(f"not found: {arg}")
        if missing and not nodeids:
            run.exit_override = 4
        if run.request.debug and len(nodeids) > 1:
            run.errors.append(f"a debug run takes exactly one test; {' '.join(run.request.args)} selects {len(nodeids)}")
            run.exit_override = 4
            self._finish(run)
            return
        run.selected = list(nodeids)
        self._add_collect_errors(run)
        run.phase = "running"
        first = run.handle.total is None
        run.handle.total = len(run.selected)
        if run.on_start is not None and first:
            run.call(run.on_start, len(run.selected))
        for nodeid, message in self.collect_errors.items():
            if nodeid in run.selected:
                run.record(TestResult(nodeid, Status.ERROR, message=message.strip().splitlines()[-1:][0] if message.strip() else "collection error", longrepr=message, path=nodeid.split("::")[0]))
        request = run.request
        workers = max(1, request.workers or self.config.workers)
        remaining = [n for n in run.selected if n not in run.results]
        targeted = len(remaining) <= TARGETED_LIMIT and all("::" in a for a in request.args) and bool(request.args)
        targeted = targeted or (self.config.isolation_scope == "test" and self.config.isolation != "off")
        # A spawned batch pays a fresh interpreter and a collection: one batch per worker.
        per_worker = 1 if self.config.mode == RunMode.SPAWN else 4
        run.queue.extend(make_batches(remaining, workers, targeted, per_worker))
        if run.complete:
            self._finish(run)

    def _add_collect_errors(self, run: Run) -> None:
        """Collection errors in the run's scope count as errored tests (pytest exits 2 for them)."""
        args = run.request.args or [""]
        for nodeid in self.collect_errors:
            if any(procutil.arg_matches(nodeid, a) or procutil.arg_matches(a, nodeid) for a in args) and nodeid not in run.selected:
                run.selected.append(nodeid)
                run.exit_override = 2

    # -- messages from workers ---------------------------------------------------

    def on_worker_started(self, msg: dict[str, Any]) -> None:
        slot = self._workers.get(msg["worker"])
        if slot is not None:
            slot.pid = msg["pid"]
            slot.files = {"out": msg["out"], "err": msg["err"], "tb": msg["tb"], "st": msg["st"]}
            slot.isolation = list(msg.get("isolation") or [])
            self._next_test(slot)

    def _next_test(self, slot: WorkerSlot) -> None:
        """The worker goes on to its next test now: it sends nothing until that test is over (``worker_status``)."""
        slot.current, slot.phase = slot.nodeids[0], "setup"
        slot.out_offset = slot.err_offset = 0
        slot.started = time.monotonic()
        slot.deadline = slot.started + slot.timeout if slot.timeout > 0 else None

    def worker_positions(self) -> list[WorkerPosition]:
        """Where each live worker is now, from its status record (any thread: reads files, changes nothing)."""
        out = []
        for slot in list(self._workers.values()):
            if not slot.pid:
                continue
            found = self._status_of(slot)
            if found is not None and found[0].phase != "done":
                out.append(WorkerPosition(slot.pid, found[1], found[0].phase))
            else:
                out.append(WorkerPosition(slot.pid, None, BETWEEN if found is not None else "starting"))
        return out

    def _read_status(self, slot: WorkerSlot) -> None:
        """Where the worker really is, from its status record: which test, which phase, since when."""
        found = self._status_of(slot)
        if found is None:
            return
        status, nodeid = found
        if status.phase == "done" or nodeid not in slot.nodeids:  # between two tests: the next has not begun
            slot.phase = BETWEEN
            return
        slot.current, slot.phase = nodeid, status.phase
        slot.started, slot.out_offset, slot.err_offset = status.started, status.out_offset, status.err_offset
        if slot.deadline is not None:
            slot.deadline = status.started + slot.timeout

    @staticmethod
    def _status_of(slot: WorkerSlot) -> tuple[worker_status.WorkerStatus, NodeId] | None:
        """The worker's last record and the test of its batch it names, or None (nothing written, or no such test)."""
        status = worker_status.read(slot.files.get("st", "")) if slot.files else None
        if status is None or not 0 < status.index <= len(slot.batch):
            return None
        return status, slot.batch[status.index - 1]

    def on_test_finished(self, msg: dict[str, Any]) -> None:
        slot = self._workers.get(msg["worker"])
        if slot is None:
            return
        result = TestResult.from_wire(msg["result"])
        if result.nodeid in slot.nodeids:
            slot.nodeids.remove(result.nodeid)
        slot.current, slot.deadline = None, None
        if slot.nodeids and slot.timed_out is None:
            self._next_test(slot)
        if not self._held:
            self._held_since = time.monotonic()
        self._held.append((result, slot, (msg["result"] or {}).get("coverage_id")))
        if self._coverage is None or not slot.nodeids or len(self._held) >= HELD_RESULTS:
            self.record_held(None if slot.nodeids else slot)

    def record_held(self, release: WorkerSlot | None = None) -> None:
        """Record the results held back, in the order they came, their lines read first.

        With coverage on, a result waits here until ``HELD_RESULTS`` have
        come, ``HELD_SECONDS`` have passed, its worker's batch is over, or
        anything else happens (every other message, call and timeout check
        records them first, so nothing is seen out of order). Reading two
        dozen tests' lines in one go runs warm; one at a time, on each wake-up
        between the workers' tests, it cost twice as much, and the supervisor's
        time is taken from the workers on a machine with no idle core.
        ``release``: a slot whose last result is here, released once its ring
        is read and before the run can finish (finishing kills the workers it
        still holds, and this one has yet to say what it warmed: worker_done;
        the zygote reaps it and its group).
        """
        held, self._held = self._held, []
        if self._coverage is not None:
            for result, slot, test_id in held:
                self._coverage.fill(result, slot.worker, test_id)
        if release is not None:
            self._release(release)
        for result, slot, _ in held:
            run = self._find_run(slot.run_id)
            if run is not None:
                run.record(result)
                if run.complete:
                    self._finish(run)

    def held_deadline(self) -> float | None:
        """When the results held back must be recorded (None: none held)."""
        return self._held_since + HELD_SECONDS if self._held else None

    def on_debug_listening(self, msg: dict[str, Any]) -> None:
        """A debug worker listens for the debugger: its caller may attach now."""
        run = self._run_of(msg["worker"])
        if run is not None:
            run.handle._debug_listening(DebugAddress(str(msg["host"]), int(msg["port"])))

    def on_debug_failed(self, msg: dict[str, Any]) -> None:
        """The worker cannot listen (no debugpy): its test's error result follows."""
        run = self._run_of(msg["worker"])
        if run is not None:
            run.handle._debug_failed(msg["reason"])

    def _run_of(self, worker: int) -> Run | None:
        slot = self._workers.get(worker)
        return self._find_run(slot.run_id) if slot is not None else None

    def on_worker_done(self, msg: dict[str, Any]) -> None:
        # The slot was released with its last result; here only what the worker warmed matters.
        self._layers.learn(msg.get("learned") or {})

    def on_standby_released(self, msg: dict[str, Any]) -> None:
        self._layers.drop_standby(int(msg["pid"]))

    def on_worker_error(self, msg: dict[str, Any]) -> None:
        slot = self._workers.get(msg["worker"])
        if slot is not None:
            self._fail_slot(slot, Status.ERROR, "tach-ls worker error: " + msg["text"].strip().splitlines()[-1], msg["text"])

    def on_spawn_failed(self, msg: dict[str, Any]) -> None:
        slot = self._workers.get(msg["worker"])
        if slot is not None:
            self._fail_slot(slot, Status.ERROR, msg["reason"], everything=True)

    def on_worker_exited(self, msg: dict[str, Any]) -> None:
        if msg["worker"] is None:  # a standby: it ran a job we wrote into its pipe, or none
            self._layers.drop_standby(int(msg["pid"]))
            slot = next((s for s in self._workers.values() if s.pid == msg["pid"]), None)
        else:
            slot = self._workers.get(msg["worker"])
        if slot is None:
            return
        status = msg["status"]
        self._read_status(slot)
        if slot.timed_out is not None:
            limit = slot.timeout
            stack = procutil.read_from(slot.files.get("tb", ""), 0) if slot.files else ""
            where = "before it began" if slot.phase == BETWEEN else f"during {slot.phase}"
            message = f"timed out after {limit:g}s {where}"
            self._fail_slot(slot, Status.TIMEOUT, message, f"{message}\n\n{stack}".rstrip(), nodeid=slot.timed_out)
        elif slot.nodeids:
            if slot.phase == BETWEEN:
                slot.current = None  # it never began this one
                where = "before this test began"
            else:
                where = f"during {slot.phase} of this test" if slot.current else "before its first test"
            message = f"worker {status_words(status)} {where}, before reporting it"
            self._fail_slot(slot, Status.CRASHED, message)
        else:
            self._release(slot)

    # -- scheduling ----------------------------------------------------------

    def _queue_run(self, run: Run) -> None:
        self._runs.append(run)

    def _find_run(self, run_id: int) -> Run | None:
        return next((r for r in self._runs if r.id == run_id), None)

    def _schedule(self) -> None:
        if self._stopping or not self._runs:
            return
        run = self._runs[0]
        if run.phase == "waiting":
            failed = self.status.state == EngineState.FAILED and not self._layers.busy
            if failed and self._layers.failed_at < run.started_at:
                self._layers.retry_failed()  # asked again after a failure: give the layers a fresh try
                return
            if failed:
                run.errors.append(self.status.detail)
                run.exit_override = self._layers.fatal_exit
                self._finish(run)
                return
            if not self._layers.can_start():
                self._layers.ensure_fresh()
                return
            if not self._select_locally(run):
                if not self._layers.ensure_fresh():
                    return
                run.phase = "selecting"
                self._layers.select(run)
                return
            if run.phase == "finished":
                return
            # A click starts before the freshness check (which costs a few hundred microseconds):
            # no message from its worker is read before the check, and a stale start is undone.
            self._dispatch(run)
            # The kernel wakes the click's worker (or the collected layer) on this CPU and lets it wait
            # for this thread to block: yield first, or the check delays the click by its whole length.
            procutil.yield_cpu()
            if self._layers.refresh_if_stale():
                self._undo_start(run)
            return
        if run.phase != "running" or not self._layers.is_ready:
            return
        self._dispatch(run)

    def _dispatch(self, run: Run) -> None:
        limit = max(1, run.request.workers or self.config.workers)
        while run.queue and len(run.active) < limit:
            batch = run.queue.popleft()
            worker = self._layers.new_worker_id()
            timeout = run.request.timeout if run.request.timeout is not None else self.config.timeout
            if run.request.debug:
                timeout = 0.0  # a person steps through it at their own pace
            slot = WorkerSlot(
                worker=worker, run_id=run.id, nodeids=list(batch), batch=list(batch), timeout=timeout, debug=run.request.debug
            )
            self._workers[worker] = slot
            run.active[worker] = slot
            self.standby_ready.clear()
            self._layers.spawn(slot)

    def _undo_start(self, run: Run) -> None:
        """The code changed under a click just started: drop its workers; it waits for the rebuild."""
        self._layers.kill(list(run.active))
        for slot in list(run.active.values()):
            if slot.pid is not None:
                procutil.kill_group(slot.pid)  # a standby given the job directly: the layer knows no worker id
            self._release(slot)
        run.queue.clear()
        run.selected = []
        run.results.clear()
        run.phase = "waiting"

    def _release(self, slot: WorkerSlot) -> None:
        self._workers.pop(slot.worker, None)
        if self._coverage is not None:
            self._coverage.release(slot.worker)
        run = self._find_run(slot.run_id)
        if run is not None:
            run.active.pop(slot.worker, None)
        remove_files(slot.files)

    def _fail_slot(
        self, slot: WorkerSlot, status: Status, message: str, longrepr: str = "", *, nodeid: NodeId | None = None,
        everything: bool = False,
    ) -> None:
        """The worker is gone: its current test gets ``status``; the rest of its batch goes back in the queue."""
        run = self._find_run(slot.run_id)
        victim = nodeid or slot.current or (slot.nodeids[0] if slot.nodeids else None)
        if run is not None and victim is not None:
            run.record(fault_result(slot, victim, status, message, longrepr))
            rest = [n for n in slot.nodeids if n != victim and n not in run.results]
            if everything:
                for other in rest:
                    run.record(fault_result(slot, other, status, message))
            elif rest and not run.cancelled:
                run.queue.appendleft(rest)
        self._release(slot)
        if run is not None and run.complete:
            self._finish(run)

    def zygote_lost(self, reason: str) -> None:
        """The collected layer died: in-flight tests become errors, the rest wait for the rebuild."""
        for slot in list(self._workers.values()):
            run = self._find_run(slot.run_id)
            message = f"the zygote died while this test ran ({reason}); it is being restarted"
            if slot.current is not None or slot.debug:  # a debugger attached to the dead worker: no silent retry
                self._fail_slot(slot, Status.ERROR, message)
            else:
                if run is not None and slot.nodeids:
                    run.queue.appendleft(list(slot.nodeids))
                self._release(slot)
        for run in self._runs:
            if run.phase == "selecting":
                run.phase = "waiting"

    def _check_timeouts(self) -> None:
        now = time.monotonic()
        held_until = self.held_deadline()
        if held_until is not None and now >= held_until:
            self.record_held()
        for slot in list(self._workers.values()):
            if slot.deadline is not None and now >= slot.deadline and slot.pid is not None:
                self._read_status(slot)  # the test may have begun later than its predecessor's result came
                if slot.deadline is not None and now < slot.deadline:
                    continue
                slot.deadline = None
                slot.timed_out = slot.current
                slot.kill_at = now + TIMEOUT_DUMP_GRACE
                try:
                    os.kill(slot.pid, signal.SIGUSR2)  # faulthandler writes every stack to slot.files["tb"]
                except ProcessLookupError:
                    pass
            elif slot.kill_at is not None and now >= slot.kill_at and slot.pid is not None:
                slot.kill_at = None
                procutil.kill_group(slot.pid)
        self._layers.check_retry(now)

    def _cancel(self, run_id: int) -> None:
        run = self._find_run(run_id)
        if run is None or run.phase == "finished":
            return
        run.cancelled = True
        run.queue.clear()
        for slot in list(run.active.values()):
            if slot.pid is not None:
                procutil.kill_group(slot.pid)
            self._layers.kill([slot.worker])
            self._release(slot)
        self._finish(run)

    def _finish(self, run: Run) -> None:
        if run.phase == "finished":
            return
        for slot in list(run.active.values()):
            if slot.pid is not None:
                procutil.kill_group(slot.pid)
            self._release(slot)
        if run.handle.debug_address is not None and not run.handle.debug_address.done():
            run.handle._debug_failed(_no_debugger_reason(run))
        summary = run.summary()
        run.phase = "finished"
        if run in self._runs:
            self._runs.remove(run)
        run.handle._finish(summary)


def _no_debugger_reason(run: Run) -> str:
    """Why a debug run ended without its worker ever listening."""
    if run.cancelled:
        return "the debug run was cancelled before its worker listened for a debugger"
    if run.errors:
        return "; ".join(run.errors)
    for result in run.results.values():
        return f"{result.nodeid} {result.status.value} before a debugger could attach: {result.message}"
    return f"no test to debug in {' '.join(run.request.args) or 'the whole suite'}"
