"""The server side of the engine: the zygote's lifecycle, scheduling, timeouts, faults.

One ``Supervisor`` per workspace. It starts the base layer in the project's
interpreter, asks it to fork the collected layer, checks both for staleness
before every run, schedules batches onto workers, enforces per-test
timeouts, turns dead workers and dead zygotes into results, and restarts
layers with bounded backoff.

Threading: everything happens on one loop thread that owns the sockets and
child processes (it must live as long as the supervisor: the zygote's
``PR_SET_PDEATHSIG`` fires when the thread that spawned it exits). The
public methods are thread-safe; they post closures to the loop. Callbacks
(``on_state``, ``on_result``, ``on_start``) are called on the loop thread and
must return quickly: an asyncio server hands them to its loop with
``call_soon_threadsafe``.

Usage::

    sup = Supervisor(EngineConfig(root=..., python=...), on_state=print)
    sup.start()
    handle = sup.run(RunRequest(args=["tests/test_x.py"]), on_result=print)
    summary = handle.wait()          # or: for result in handle.results(): ...
    sup.cancel(handle.run_id)        # from any thread
    sup.shutdown()
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import queue
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from . import procutil, wire
from .layers import LayerSet
from .results import NodeId, Status, TestResult
from .runs import (
    TARGETED_LIMIT,
    ResultCallback,
    Run,
    RunHandle,
    RunMode,
    RunRequest,
    StartCallback,
    WorkerSlot,
    fault_result,
    make_batches,
    remove_files,
    status_words,
)

ZYGOTE_SCRIPT = Path(__file__).with_name("zygote.py")
TIMEOUT_DUMP_GRACE = 0.3
"""Seconds between asking a timed-out worker for its stacks and killing its process group."""


class EngineState(str, enum.Enum):
    """The zygote's state as the editor sees it (``tach/status``)."""

    STOPPED = "stopped"
    """Not started, or shut down."""
    STARTING = "starting"
    """Starting the base layer or collecting for the first time."""
    READY = "ready"
    """Collected and warm: a run costs a fork and the test."""
    REBUILDING = "rebuilding"
    """A layer went stale or died and is being rebuilt."""
    FAILED = "failed"
    """A layer cannot start (missing pytest, broken config); see the detail."""


@dataclasses.dataclass
class EngineStatus:
    """One state change: which layer moved, and why."""

    state: EngineState
    layer: str
    detail: str = ""
    generation: int = 0


StateCallback = Callable[[EngineStatus], None]


@dataclasses.dataclass
class EngineConfig:
    """How to run one workspace's tests."""

    root: Path
    python: Path = Path(sys.executable)
    cache_dir: Path | None = None
    workers: int = os.cpu_count() or 1
    timeout: float = 300.0
    mode: RunMode = RunMode.FORK
    pytest_args: list[str] = dataclasses.field(default_factory=list)
    collect_args: list[str] = dataclasses.field(default_factory=list)
    """What the collected layer collects (default: the project's testpaths or root)."""
    standby: bool = True
    max_restarts: int = 4
    env: dict[str, str] | None = None


@dataclasses.dataclass
class _Conn:
    sock: socket.socket
    receiver: wire.Receiver
    role: str = ""
    generation: int = 0


class Supervisor:
    """Owns one workspace's zygote and its runs. See the module docstring for usage."""

    def __init__(self, config: EngineConfig, on_state: StateCallback | None = None) -> None:
        self.config = config
        self._on_state = on_state
        self.status = EngineStatus(EngineState.STOPPED, "base")
        self.warnings: list[str] = []
        self.items: list[tuple[NodeId, str, int]] = []
        self.collect_errors: dict[NodeId, str] = {}
        self.rootdir = str(config.root)
        self._calls: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._selector = selectors.DefaultSelector()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._ready = threading.Event()
        self._next_id = 0
        self._runs: list[Run] = []
        self._workers: dict[int, WorkerSlot] = {}
        self._current: _Conn | None = None  # the message's connection, during dispatch
        self._layers = LayerSet(self)

    # -- public API (any thread) ---------------------------------------------

    def start(self) -> None:
        """Start the loop thread and the zygote; returns at once."""
        if self._thread is not None:
            return
        self.rundir = tempfile.mkdtemp(prefix="tach-ls-")
        self._listener = wire.listen(os.path.join(self.rundir, "s"))
        self._selector.register(self._listener, selectors.EVENT_READ, ("listener", None))
        self._selector.register(self._wake_r, selectors.EVENT_READ, ("wake", None))
        self._thread = threading.Thread(target=self._loop, name="tach-ls-supervisor", daemon=True)
        self._thread.start()
        self._post(self._layers.start)

    def wait_ready(self, timeout: float | None = None) -> EngineStatus:
        """Block until collected and warm (or failed); the status either way."""
        self._ready.wait(timeout)
        return self.status

    def run(
        self,
        request: RunRequest,
        on_result: ResultCallback | None = None,
        on_start: StartCallback | None = None,
    ) -> RunHandle:
        """Queue a run; results stream to ``on_result`` and to the handle."""
        self.start()
        self._next_id += 1
        run_id = self._next_id
        handle = RunHandle(run_id, self.cancel)
        run = Run(run_id, request, handle, on_result, on_start)
        self._post(lambda: self._queue_run(run))
        return handle

    def cancel(self, run_id: int) -> None:
        """Stop a run: kill its workers; it finishes with exit code 2."""
        self._post(lambda: self._cancel(run_id))

    def notify_changed(self, paths: Iterable[str | Path] = ()) -> None:
        """A file changed: rebuild a stale layer now, so the next run is warm."""
        self._post(self._layers.refresh_if_stale)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Cancel runs, stop the zygote and every worker, remove temporary files."""
        if self._thread is None:
            return
        self._post(self._shutdown)
        self._thread.join(timeout)
        shutil.rmtree(self.rundir, ignore_errors=True)
        self._thread = None

    # -- loop ------------------------------------------------------------------

    def _post(self, call: Callable[[], None]) -> None:
        self._calls.put(call)
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:
            pass

    def _loop(self) -> None:
        while not self._stopping:
            timeout = self._next_deadline()
            for key, _ in self._selector.select(timeout):
                kind, data = key.data
                if kind == "wake":
                    os.read(self._wake_r, 4096)
                elif kind == "listener":
                    sock, _ = self._listener.accept()
                    conn = _Conn(sock, wire.Receiver(sock))
                    self._selector.register(sock, selectors.EVENT_READ, ("conn", conn))
                elif kind == "conn":
                    self._read(data)
                elif kind == "proc":
                    data()
            while not self._calls.empty():
                self._calls.get()()
            self._check_timeouts()
            self._schedule()
        self._selector.close()

    def _read(self, conn: _Conn) -> None:
        try:
            packet = conn.sock.recv(wire.MAX_PACKET + 64)
        except OSError:
            packet = b""
        if not packet:
            self.drop_conn(conn)
            return
        message = conn.receiver.feed(packet)
        if message is None:
            return
        if conn.role == "collected" and conn.generation != self._layers.generation:
            return  # a late message from a layer already thrown away
        self._current = conn
        wire.dispatch(self, message)

    def drop_conn(self, conn: _Conn) -> None:
        try:
            self._selector.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()

    def add_proc(self, pidfd: int, on_exit: Callable[[], None]) -> None:
        self._selector.register(pidfd, selectors.EVENT_READ, ("proc", on_exit))

    def remove_proc(self, pidfd: int) -> None:
        self._selector.unregister(pidfd)
        os.close(pidfd)

    def set_status(self, state: EngineState, layer: str, detail: str = "") -> None:
        self.status = EngineStatus(state, layer, detail, self._layers.generation)
        if state in (EngineState.READY, EngineState.FAILED):
            self._ready.set()
        else:
            self._ready.clear()
        if self._on_state is not None:
            self._on_state(self.status)

    def _next_deadline(self) -> float | None:
        times = [t for slot in self._workers.values() for t in (slot.deadline, slot.kill_at) if t is not None]
        if self._layers.retry_at is not None:
            times.append(self._layers.retry_at)
        if not times:
            return None
        return max(0.0, min(times) - time.monotonic())

    # -- messages from the zygote layers -----------------------------------

    def on_hello(self, msg: dict[str, Any]) -> None:
        assert self._current is not None
        self._current.role = msg["role"]
        self._current.generation = int(msg.get("generation", 0))
        self._layers.hello(self._current, msg)

    def on_base_ready(self, msg: dict[str, Any]) -> None:
        self._layers.base_ready(msg)

    def on_fatal(self, msg: dict[str, Any]) -> None:
        self._layers.fatal(msg)

    def on_collected_exited(self, msg: dict[str, Any]) -> None:
        self._layers.collected_exited(msg)

    def on_items(self, msg: dict[str, Any]) -> None:
        self.items.extend((n, p, line) for n, p, line in msg["items"])

    def on_collect_error(self, msg: dict[str, Any]) -> None:
        self.collect_errors[msg["nodeid"]] = msg["message"]

    def on_ready(self, msg: dict[str, Any]) -> None:
        self.rootdir = msg["rootdir"]
        self._layers.collected_ready(msg)

    def on_warning(self, msg: dict[str, Any]) -> None:
        if msg["text"] not in self.warnings:
            self.warnings.append(msg["text"])

    def on_log(self, msg: dict[str, Any]) -> None:
        pass

    def on_selected(self, msg: dict[str, Any]) -> None:
        run = self._find_run(int(msg["req"]))
        if run is None or run.phase != "selecting":
            return
        if msg.get("error"):
            run.errors.append(msg["error"])
            run.exit_override = 4
            self._finish(run)
            return
        for missing in msg.get("missing", []):
            run.errors.append(f"not found: {missing}")
        if msg.get("missing") and not msg["nodeids"]:
            run.exit_override = 4
        run.selected = list(msg["nodeids"])
        self._add_collect_errors(run)
        run.phase = "running"
        run.handle.total = len(run.selected)
        if run.on_start is not None:
            run.on_start(len(run.selected))
        for nodeid, message in self.collect_errors.items():
            if nodeid in run.selected:
                run.record(TestResult(nodeid, Status.ERROR, message=message.strip().splitlines()[-1:][0] if message.strip() else "collection error", longrepr=message, path=nodeid.split("::")[0]))
        request = run.request
        workers = max(1, request.workers or self.config.workers)
        remaining = [n for n in run.selected if n not in run.results]
        targeted = len(remaining) <= TARGETED_LIMIT and all("::" in a for a in request.args) and bool(request.args)
        run.queue.extend(make_batches(remaining, workers, targeted))
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
            slot.files = {"out": msg["out"], "err": msg["err"], "tb": msg["tb"]}

    def on_test_started(self, msg: dict[str, Any]) -> None:
        slot = self._workers.get(msg["worker"])
        if slot is None:
            return
        slot.current, slot.phase = msg["nodeid"], "setup"
        slot.out_offset, slot.err_offset = msg["out_offset"], msg["err_offset"]
        slot.started = time.monotonic()
        slot.deadline = slot.started + slot.timeout if slot.timeout > 0 else None

    def on_phase(self, msg: dict[str, Any]) -> None:
        slot = self._workers.get(msg["worker"])
        if slot is not None and slot.current == msg["nodeid"]:
            slot.phase = msg["when"]

    def on_test_finished(self, msg: dict[str, Any]) -> None:
        slot = self._workers.get(msg["worker"])
        if slot is None:
            return
        result = TestResult.from_wire(msg["result"])
        if result.nodeid in slot.nodeids:
            slot.nodeids.remove(result.nodeid)
        slot.current, slot.deadline = None, None
        run = self._find_run(slot.run_id)
        if run is not None:
            run.record(result)
            if run.complete:
                self._finish(run)
        if not slot.nodeids:
            self._release(slot)

    def on_worker_done(self, msg: dict[str, Any]) -> None:
        pass  # the slot is released when its last result arrives; the exit is reaped by the layer

    def on_worker_error(self, msg: dict[str, Any]) -> None:
        slot = self._workers.get(msg["worker"])
        if slot is not None:
            self._fail_slot(slot, Status.ERROR, "tach-ls worker error: " + msg["text"].strip().splitlines()[-1], msg["text"])

    def on_spawn_failed(self, msg: dict[str, Any]) -> None:
        slot = self._workers.get(msg["worker"])
        if slot is not None:
            self._fail_slot(slot, Status.ERROR, msg["reason"], everything=True)

    def on_worker_exited(self, msg: dict[str, Any]) -> None:
        slot = self._workers.get(msg["worker"])
        if slot is None:
            return
        status = msg["status"]
        if slot.timed_out is not None:
            limit = slot.timeout
            stack = procutil.read_from(slot.files.get("tb", ""), 0) if slot.files else ""
            message = f"timed out after {limit:g}s during {slot.phase}"
            self._fail_slot(slot, Status.TIMEOUT, message, f"{message}\n\n{stack}".rstrip(), nodeid=slot.timed_out)
        elif slot.nodeids:
            where = f"during {slot.phase}" if slot.current else "before its first test"
            message = f"worker {status_words(status)} {where} of this test, before reporting it"
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
            if not self._layers.ensure_fresh():
                return
            run.phase = "selecting"
            self._layers.select(run)
            return
        if run.phase != "running" or not self._layers.is_ready:
            return
        limit = max(1, run.request.workers or self.config.workers)
        while run.queue and len(run.active) < limit:
            batch = run.queue.popleft()
            worker = self._layers.new_worker_id()
            timeout = run.request.timeout if run.request.timeout is not None else self.config.timeout
            slot = WorkerSlot(worker=worker, run_id=run.id, nodeids=list(batch), timeout=timeout)
            self._workers[worker] = slot
            run.active[worker] = slot
            self._layers.spawn(slot)

    def _release(self, slot: WorkerSlot) -> None:
        self._workers.pop(slot.worker, None)
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
            if slot.current is not None:
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
        for slot in list(self._workers.values()):
            if slot.deadline is not None and now >= slot.deadline and slot.pid is not None:
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
        summary = run.summary()
        run.phase = "finished"
        if run in self._runs:
            self._runs.remove(run)
        run.handle._finish(summary)

    def _shutdown(self) -> None:
        for run in list(self._runs):
            self._cancel(run.id)
        self._layers.stop()
        self._stopping = True
        self.set_status(EngineState.STOPPED, "base", "shut down")

    # -- helpers used by the layers ------------------------------------------------

    def spec(self, **extra: Any) -> str:
        cfg = self.config
        data = {
            "root": str(cfg.root),
            "connect": os.path.join(self.rundir, "s"),
            "parent": os.getpid(),
            "rundir": self.rundir,
            "pytest_args": list(cfg.pytest_args),
            "collect_args": list(cfg.collect_args),
            "standby": cfg.standby,
            "rootdir": self.rootdir,
        }
        data.update(extra)
        return json.dumps(data)

    def popen(self, argv: list[str], log_name: str) -> subprocess.Popen[bytes]:
        log = open(os.path.join(self.rundir, log_name), "ab")
        env = dict(self.config.env if self.config.env is not None else os.environ)
        try:
            return subprocess.Popen(
                [str(self.config.python), str(ZYGOTE_SCRIPT), *argv],
                cwd=str(self.config.root),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                env=env,
            )
        finally:
            log.close()

    def log_tail(self, log_name: str, limit: int = 4000) -> str:
        try:
            with open(os.path.join(self.rundir, log_name), "rb") as handle:
                data = handle.read()
        except OSError:
            return ""
        return data[-limit:].decode("utf-8", "replace").strip()

    def cache_file(self, name: str) -> Path | None:
        if self.config.cache_dir is None:
            return None
        return self.config.cache_dir / name
