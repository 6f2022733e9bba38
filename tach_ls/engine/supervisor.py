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
    debug = sup.run(RunRequest(args=["tests/test_x.py::test_a"], debug=True))
    address = debug.debug_address.result(60)   # DebugAddress(host, port), or raises DebugError
    sup.cancel(handle.run_id)        # from any thread
    sup.shutdown()
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import queue
import selectors
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from . import wire
from .coverage_feed import CoverageFeed, RunCoverageBuilder
from .layers import LayerSet
from .results import NodeId, TestResult
from .runs import ResultCallback, Run, RunHandle, RunRequest, StartCallback, WorkerSlot
from .scheduler import RunScheduler
from .status import EngineConfig, EngineState, EngineStatus, StateCallback

__all__ = ["EngineConfig", "EngineState", "EngineStatus", "RunHandle", "RunRequest", "Supervisor"]

ZYGOTE_SCRIPT = Path(__file__).with_name("zygote.py")


@dataclasses.dataclass
class _Conn:
    sock: socket.socket
    receiver: wire.Receiver
    role: str = ""
    generation: int = 0


class Supervisor(RunScheduler):
    """Owns one workspace's zygote and its runs. See the module docstring for usage."""

    def __init__(self, config: EngineConfig, on_state: StateCallback | None = None) -> None:
        self.config = config
        self._on_state = on_state
        self.status = EngineStatus(EngineState.STOPPED, "base")
        self.warnings: list[str] = []
        self.items: list[tuple[NodeId, str, int]] = []
        """The collected layer's items (node id, path, 1-based line): the truth for the static index."""
        self.collect_errors: dict[NodeId, str] = {}
        self._item_ids: set[NodeId] = set()
        self.standby_ready = threading.Event()
        """Set while a standby child waits, prefaulted: the next click costs only its test."""
        self._prefaulted = 0  # the last standby that said it was ready
        self.rootdir = str(config.root)
        self._calls: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._selector = selectors.DefaultSelector()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._stopping = False
        self._ready = threading.Event()
        self._run_ids = itertools.count(1)  # next() on a count is atomic: run() may be called from any thread
        self._runs: list[Run] = []
        self._workers: dict[int, WorkerSlot] = {}
        self._current: _Conn | None = None  # the message's connection, during dispatch
        self._layers = LayerSet(self)
        self._coverage = CoverageFeed(config.root) if config.coverage else None
        self._held: list[tuple[TestResult, WorkerSlot, Any]] = []
        self._held_since = 0.0

    # -- public API (any thread) ---------------------------------------------

    def start(self) -> None:
        """Start the loop thread and the zygote; returns at once (and does nothing the second time)."""
        with self._start_lock:
            if self._thread is None:
                self._start()

    def _start(self) -> None:
        self.rundir = tempfile.mkdtemp(prefix="tach-ls-")
        self._listener = wire.listen(os.path.join(self.rundir, "s"))
        self._listener.setblocking(False)
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
        run_id = next(self._run_ids)
        handle = RunHandle(run_id, self.cancel, debug=request.debug)
        run = Run(run_id, request, handle, on_result, on_start)
        if self._coverage is not None:
            run.coverage = RunCoverageBuilder(self._coverage)
        self._post(lambda: self._queue_run(run))
        return handle

    def cancel(self, run_id: int) -> None:
        """Stop a run: kill its workers; it finishes with exit code 2."""
        self._post(lambda: self._cancel(run_id))

    def notify_changed(self, paths: Iterable[str | Path] = ()) -> None:
        """A file changed: rebuild a stale layer now, so the next run is warm."""
        def refresh() -> None:
            self._layers.refresh_if_stale()

        self._post(refresh)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Cancel runs, stop the zygote and every worker, remove temporary files."""
        if self._thread is None:
            return
        self._post(self._shutdown)
        self._thread.join(timeout)
        self._remove_rundir()
        self._thread = None

    def _remove_rundir(self, bound: float = 2.0) -> None:
        # Workers die with their zygote through PR_SET_PDEATHSIG, a moment after it: one may
        # still create its output files while the folder is being removed, so try again briefly.
        deadline = time.monotonic() + bound
        while True:
            shutil.rmtree(self.rundir, ignore_errors=True)
            if not os.path.exists(self.rundir) or time.monotonic() > deadline:
                return
            time.sleep(0.02)

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
            exits = []
            for key, _ in self._selector.select(timeout):
                kind, data = key.data
                if kind == "wake":
                    os.read(self._wake_r, 4096)
                elif kind == "listener":
                    self._accept()
                elif kind == "conn":
                    self._read(data)
                elif kind == "proc":
                    exits.append(data)
            if exits:
                # What a process said before it exited must be read before its exit is handled:
                # the two come through different file descriptors, in no particular order.
                self._drain()
                self.record_held()
                for on_exit in exits:
                    on_exit()
            while not self._calls.empty():
                self.record_held()
                self._calls.get()()
            self._check_timeouts()
            self._schedule()
        self._selector.close()

    def _accept(self) -> bool:
        try:
            sock, _ = self._listener.accept()
        except BlockingIOError:
            return False
        conn = _Conn(sock, wire.Receiver(sock))
        self._selector.register(sock, selectors.EVENT_READ, ("conn", conn))
        return True

    def _drain(self) -> None:
        """Accept every pending connection and read every packet already sent, without blocking."""
        while self._accept():
            pass
        for key in list(self._selector.get_map().values()):
            kind, conn = key.data
            if kind != "conn":
                continue
            while conn.sock.fileno() >= 0 and self._read(conn, flags=socket.MSG_DONTWAIT):
                pass

    def _read(self, conn: _Conn, flags: int = 0) -> bool:
        """Read and dispatch one packet; False at end of stream or when nothing is waiting."""
        try:
            packet, fds = wire.recv_fds(conn.sock, wire.MAX_PACKET + 64, flags)
        except BlockingIOError:
            return False
        except OSError:
            packet, fds = b"", []
        if not packet:
            _close_all(fds)
            self.drop_conn(conn)
            return False
        message = conn.receiver.feed(packet)
        if message is None:
            _close_all(fds)
            return True
        if conn.role == "collected" and conn.generation != self._layers.generation:
            _close_all(fds)
            return True  # a late message from a layer already thrown away
        self._current = conn
        if fds:
            message["_fds"] = fds  # a handler keeps a descriptor by taking it out of this list
        if message.get("op") != "test_finished":
            self.record_held()  # the results before it first: what a worker said next concerns them
        try:
            wire.dispatch(self, message)
        finally:
            _close_all(message.get("_fds", ()))
        return True

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
        for when in (self._layers.retry_at, self._layers.start_deadline, self.held_deadline()):
            if when is not None:
                times.append(when)
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
        self._drain()  # the layer's last words (a fatal error, results) come on its own connection
        self._layers.collected_exited(msg)

    def on_items(self, msg: dict[str, Any]) -> None:
        self.items.extend((n, p, line) for n, p, line in msg["items"])
        self._item_ids.update(n for n, _, _ in msg["items"])

    def clear_items(self) -> None:
        self.items.clear()
        self._item_ids.clear()
        self.collect_errors.clear()

    def on_standby_pipe(self, msg: dict[str, Any]) -> None:
        fds = msg.get("_fds") or []
        if fds:
            self._layers.standby_pipe(int(msg["pid"]), fds.pop(0))
            if self._prefaulted == msg["pid"]:
                self.standby_ready.set()

    def on_standby_ready(self, msg: dict[str, Any]) -> None:
        """The standby finished prefaulting (its pipe may come before or after: two senders, one socket)."""
        self._prefaulted = msg["pid"]
        if self._layers.standby is not None and self._layers.standby[0] == msg["pid"]:
            self.standby_ready.set()

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

    def on_coverage_ring(self, msg: dict[str, Any]) -> None:
        """A worker's coverage ring (its memfd attached): map it for the life of the slot."""
        fds = msg.get("_fds") or []
        if self._coverage is not None and fds and msg["worker"] in self._workers:
            self._coverage.attach(msg["worker"], int(msg.get("pid") or 0), fds.pop(0))

    def on_coverage_base(self, msg: dict[str, Any]) -> None:
        """Lines a collected layer ran outside any test (collection imports, its own hooks)."""
        if self._coverage is not None:
            self._coverage.base(int(msg["generation"]), msg["files"])

    def _shutdown(self) -> None:
        for run in list(self._runs):
            self._cancel(run.id)
        self._layers.stop()
        if self._coverage is not None:
            self._coverage.close()
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
            "isolation": cfg.isolation,
            "show_writes": cfg.show_writes,
            "coverage": cfg.coverage_spec(),
        }
        data.update(extra)
        return json.dumps(data)

    def popen(self, argv: list[str], log_name: str) -> subprocess.Popen[bytes]:
        log = open(os.path.join(self.rundir, log_name), "ab")  # noqa: SIM115
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


def _close_all(fds: Iterable[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
