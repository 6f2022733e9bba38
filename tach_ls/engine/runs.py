"""One run's bookkeeping on the supervisor side: request, batches, workers, results.

Server side. Owns what the caller sees of a run (``RunRequest``,
``RunHandle``, ``RunSummary``), how selected node ids become batches
(``make_batches``), what is known about each live worker (``WorkerSlot``)
and how a worker that died turns into the result of the test it was running
(``fault_result``). The supervisor drives it from its loop thread.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import os
import queue
import threading
import time
from collections import deque
from concurrent.futures import Future, InvalidStateError
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .procutil import read_from
from .results import NodeId, Status, TestResult

if TYPE_CHECKING:
    from .coverage_feed import RunCoverage, RunCoverageBuilder

ResultCallback = Callable[[TestResult], None]
StartCallback = Callable[[int], None]
TARGETED_LIMIT = 8
"""A run of at most this many node ids forks one worker per test (a click, not a suite)."""
MIN_BATCH = 10
"""Below this many tests a batch is not worth its fork and its session fixtures."""


class RunMode(str, enum.Enum):
    """How workers come to be."""

    FORK = "fork"
    """Forked from the warm collected layer (fast)."""
    SPAWN = "spawn"
    """A fresh interpreter per batch (slow, safe for code that cannot survive fork)."""


@dataclasses.dataclass
class RunRequest:
    """What to run. ``args`` are paths or node ids, relative to the rootdir or absolute."""

    args: list[str] = dataclasses.field(default_factory=list)
    keyword: str = ""
    markexpr: str = ""
    workers: int | None = None
    timeout: float | None = None
    debug: bool = False
    """Debug one test: its worker (forked fresh, on the host's network, no timeout) listens
    for a debugpy client and waits for it before running the test; the address comes on
    ``RunHandle.debug_address``. ``args`` must select exactly one test."""


@dataclasses.dataclass(frozen=True)
class DebugAddress:
    """Where a debug run's worker waits: debugpy's adapter, speaking DAP over TCP."""

    host: str
    port: int


class DebugError(RuntimeError):
    """A debug run has no address to attach to (debugpy missing, unknown test, cancelled...); the message says why."""


@dataclasses.dataclass
class RunSummary:
    """The end of a run: counts per status, exit code in pytest's meaning, and notes."""

    run_id: int
    exit_code: int
    counts: dict[str, int]
    duration_s: float
    results: list[TestResult]
    errors: list[str] = dataclasses.field(default_factory=list)
    cancelled: bool = False
    selected: list[NodeId] = dataclasses.field(default_factory=list)
    """Node ids in collection order (``results`` is in the order tests finished)."""
    coverage: RunCoverage | None = None
    """With coverage on: lines per test and per file (``tach_ls.coverage_data`` adds missed lines)."""

    def count(self, status: Status) -> int:
        return self.counts.get(status.value, 0)


class RunHandle:
    """The caller's side of a run: iterate results as they finish, or wait for the summary."""

    def __init__(self, run_id: int, cancel: Callable[[int], None], debug: bool = False) -> None:
        self.run_id = run_id
        self.total: int | None = None
        self.debug_address: Future[DebugAddress] | None = Future() if debug else None
        """A debug run's: resolves when the worker listens, fails with ``DebugError`` if it never will."""
        self._queue: queue.SimpleQueue[TestResult | None] = queue.SimpleQueue()
        self._done = threading.Event()
        self._summary: RunSummary | None = None
        self._cancel = cancel

    def results(self) -> Iterator[TestResult]:
        """Each result as its test finishes; ends when the run does."""
        while True:
            item = self._queue.get()
            if item is None:
                return
            yield item

    def wait(self, timeout: float | None = None) -> RunSummary:
        if not self._done.wait(timeout):
            raise TimeoutError(f"run {self.run_id} still going after {timeout}s")
        assert self._summary is not None
        return self._summary

    def cancel(self) -> None:
        self._cancel(self.run_id)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def _push(self, result: TestResult) -> None:
        self._queue.put(result)

    def _debug_listening(self, address: DebugAddress) -> None:
        if self.debug_address is not None and not self.debug_address.done():
            with contextlib.suppress(InvalidStateError):  # the caller cancelled the future meanwhile
                self.debug_address.set_result(address)

    def _debug_failed(self, reason: str) -> None:
        if self.debug_address is not None and not self.debug_address.done():
            with contextlib.suppress(InvalidStateError):
                self.debug_address.set_exception(DebugError(reason))

    def _finish(self, summary: RunSummary) -> None:
        self._summary = summary
        self._queue.put(None)
        self._done.set()


@dataclasses.dataclass
class WorkerSlot:
    """A worker of a run, from spawn request to exit."""

    worker: int
    run_id: int
    nodeids: list[NodeId]
    """Tests of its batch not yet reported."""
    batch: list[NodeId] = dataclasses.field(default_factory=list)
    """Its whole batch, in order (a status record names a test by its position here)."""
    pid: int | None = None
    files: dict[str, str] = dataclasses.field(default_factory=dict)
    current: NodeId | None = None
    phase: str = "setup"
    out_offset: int = 0
    err_offset: int = 0
    started: float = 0.0
    deadline: float | None = None
    timed_out: NodeId | None = None
    kill_at: float | None = None
    timeout: float = 0.0
    isolation: list[str] = dataclasses.field(default_factory=list)
    """What the worker said it runs under (a test it dies in still carries it)."""
    debug: bool = False
    """It waits for a debugger before its test (see ``RunRequest.debug``)."""


def make_batches(
    nodeids: list[NodeId], workers: int, targeted: bool, per_worker: int = 4
) -> list[list[NodeId]]:
    """One test per batch for a click; else runs of whole modules, ``per_worker`` batches per worker.

    Small modules are packed together; a module larger than a batch is cut
    into contiguous pieces (its module fixtures are then set up once per
    piece, as pytest-xdist does per worker). Session fixtures are set up once
    per batch. Batches keep collection order and are handed out as workers
    free up, so a slow piece does not hold the others back.
    """
    if targeted:
        return [[n] for n in nodeids]
    if workers <= 1:
        return [list(nodeids)] if nodeids else []
    size = max(MIN_BATCH, -(-len(nodeids) // (workers * per_worker)))
    modules: dict[str, list[NodeId]] = {}
    for nodeid in nodeids:
        modules.setdefault(nodeid.split("::", 1)[0], []).append(nodeid)
    batches: list[list[NodeId]] = []
    current: list[NodeId] = []
    for tests in modules.values():
        if len(tests) > size:
            if current:
                batches.append(current)
                current = []
            pieces = -(-len(tests) // size)
            step = -(-len(tests) // pieces)
            batches.extend(tests[i : i + step] for i in range(0, len(tests), step))
            continue
        current.extend(tests)
        if len(current) >= size:
            batches.append(current)
            current = []
    if current:
        batches.append(current)
    return batches


def fault_result(slot: WorkerSlot, nodeid: NodeId, status: Status, message: str, longrepr: str = "") -> TestResult:
    """The result of a test whose worker died under it, with whatever output it left."""
    started = slot.current == nodeid
    stdout = read_from(slot.files["out"], slot.out_offset) if started and slot.files else ""
    stderr = read_from(slot.files["err"], slot.err_offset) if started and slot.files else ""
    duration = (time.monotonic() - slot.started) * 1000.0 if started and slot.started else 0.0
    return TestResult(
        nodeid=nodeid,
        status=status,
        duration_ms=round(duration, 3),
        message=message,
        longrepr=longrepr or message,
        path=nodeid.split("::", 1)[0],
        stdout=stdout,
        stderr=stderr,
        worker=slot.pid,
        isolation=list(slot.isolation) if started else [],
    )


def remove_files(files: dict[str, str]) -> None:
    for path in files.values():
        try:
            os.unlink(path)
        except OSError:
            pass


class Run:
    """A run in the supervisor: its queue of batches, live workers and results so far."""

    def __init__(
        self,
        run_id: int,
        request: RunRequest,
        handle: RunHandle,
        on_result: ResultCallback | None,
        on_start: StartCallback | None,
    ) -> None:
        self.id = run_id
        self.request = request
        self.handle = handle
        self.on_result = on_result
        self.on_start = on_start
        self.selected: list[NodeId] = []
        self.results: dict[NodeId, TestResult] = {}
        self.queue: deque[list[NodeId]] = deque()
        self.active: dict[int, WorkerSlot] = {}
        self.errors: list[str] = []
        self.exit_override: int | None = None
        self.cancelled = False
        self.started_at = time.monotonic()
        self.phase = "waiting"  # waiting -> selecting -> running -> finished
        self.coverage: RunCoverageBuilder | None = None

    def record(self, result: TestResult) -> None:
        if result.nodeid in self.results or self.phase == "finished":
            return
        self.results[result.nodeid] = result
        if self.coverage is not None:
            self.coverage.add(result)
        self.handle._push(result)
        if self.on_result is not None:
            self.call(self.on_result, result)

    def call(self, callback: Callable[..., None], *args: Any) -> None:
        """A caller's callback, on the supervisor's loop: if it raises, the run goes on without it.

        The loop thread serves every run; an exception escaping here (a
        reporter writing to a closed pipe) stopped it, and the caller waited
        for results forever.
        """
        try:
            callback(*args)
        except Exception as exc:  # noqa: BLE001
            self.errors.append(f"a callback of this run failed and was dropped: {type(exc).__name__}: {exc}")
            if callback is self.on_result:
                self.on_result = None
            if callback is self.on_start:
                self.on_start = None

    @property
    def complete(self) -> bool:
        if self.phase != "running" or len(self.results) < len(self.selected):
            return False
        return all(n in self.results for n in self.selected)

    def summary(self) -> RunSummary:
        counts: dict[str, int] = {}
        for result in self.results.values():
            counts[result.status.value] = counts.get(result.status.value, 0) + 1
        if self.exit_override is not None:
            code = self.exit_override
        elif self.cancelled:
            code = 2
        elif any(r.status.is_failure for r in self.results.values()):
            code = 1
        elif not self.results:
            code = 5
        else:
            code = 0
        return RunSummary(
            run_id=self.id,
            exit_code=code,
            counts=counts,
            duration_s=time.monotonic() - self.started_at,
            results=list(self.results.values()),
            errors=list(self.errors),
            cancelled=self.cancelled,
            selected=list(self.selected),
            coverage=self.coverage.finish() if self.coverage is not None else None,
        )


def status_words(status: dict[str, Any]) -> str:
    """'killed by SIGSEGV' or 'exited with code 3' from a wire exit status."""
    if "signal" in status:
        return f"killed by {status.get('name') or status['signal']}"
    return f"exited with code {status.get('code')}"
