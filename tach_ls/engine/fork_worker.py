"""The worker: a child of the collected layer that runs one item or one batch.

Standard library and pytest only. Owns what happens in a child between the
fork and ``os._exit``: joining its own process group (so a timeout kills the
test's own children too), dying with the zygote, reseeding ``random``,
sending fd 1 and 2 to per-worker files that outlive a crash, arming the
faulthandler dump that a timeout triggers, and then running each item through
pytest's real ``pytest_runtest_protocol`` with ``nextitem`` chained across the
batch, so module and session fixtures are set up once per batch, as in
pytest-xdist. Each item's phase reports become one result (see ``classify``).

Dependencies: ``deps_audit`` brackets each item too, so its result names
the workspace files it opened and the endpoints it connected to (impact
analysis selects a test again when a file it read changes).

Isolation: ``become_worker`` calls ``namespaces.enter()`` right after the
fork, once the output files are open (a standby does it before its job
arrives); each result carries the features that applied.
"""

from __future__ import annotations

import faulthandler
import gc
import io
import os
import random
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import pytest

from . import deps_audit, namespaces, procutil, worker_status
from .results import Status

LONGREPR_LIMIT = 24_000
TIMEOUT_DUMP_SIGNAL = signal.SIGUSR2
"""The supervisor sends this before killing a timed-out worker; faulthandler dumps every stack."""

Send = Callable[..., None]


@dataclass
class WorkerFiles:
    """Where a worker's fd 1, fd 2, timeout stack dump and status record go (read by the supervisor after a crash)."""

    out: str
    err: str
    tb: str
    st: str
    """The status record (``worker_status``): which test of the batch, which phase."""

    @classmethod
    def for_pid(cls, folder: str, pid: int) -> WorkerFiles:
        base = os.path.join(folder, f"w{pid}")
        return cls(out=base + ".out", err=base + ".err", tb=base + ".tb", st=base + ".st")

    def started_fields(self) -> dict[str, Any]:
        """The fields of ``worker_started`` that say where these files are."""
        return {"out": self.out, "err": self.err, "tb": self.tb, "st": self.st}


def become_worker(zygote_pid: int, outdir: str, close_fds: list[int], skip: tuple[str, ...] = ()) -> WorkerFiles:
    """Turn a freshly forked child into a worker; the first thing it does (``skip``: isolation left out)."""
    for fd in close_fds:
        try:
            os.close(fd)
        except OSError:
            pass
    procutil.THREAD_WATCH["on"] = False
    try:
        os.setpgid(0, 0)
    except PermissionError:  # already a session leader (spawn mode): already its own group
        pass
    procutil.die_with_parent(zygote_pid)
    gc.enable()  # the zygote disables gc around fork; frozen objects stay frozen, so pages stay shared
    random.seed()
    files = WorkerFiles.for_pid(outdir, os.getpid())
    _redirect_output(files)
    tb_file = open(files.tb, "w")  # noqa: SIM115 (kept open for the life of the worker: faulthandler writes to its fd)
    faulthandler.register(TIMEOUT_DUMP_SIGNAL, file=tb_file, all_threads=True)
    faulthandler.enable(file=sys.stderr, all_threads=True)
    namespaces.enter(skip=skip)  # the session's plan: private /tmp, project overlay, network, /proc guard
    return files


def _redirect_output(files: WorkerFiles) -> None:
    for fd, path in ((1, files.out), (2, files.err)):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
        os.dup2(target, fd)
        os.close(target)
    # Line-buffered, so what a test printed before a crash is already in the file.
    sys.stdout = open(1, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115


def output_offsets() -> tuple[int, int]:
    """Current ends of the worker's stdout and stderr files."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    return os.fstat(1).st_size, os.fstat(2).st_size


@dataclass
class ItemOutcome:
    """The phase reports of one item, and where its failure points."""

    reports: list[Any] = field(default_factory=list)
    where: dict[str, tuple[int | None, str, int | None]] = field(default_factory=dict)


class Recorder:
    """A pytest plugin in the worker: gathers phase reports and failure locations, and records the phase."""

    def __init__(self, root: str, send: Send, status: worker_status.StatusWriter) -> None:
        self.root = os.path.realpath(root)
        self.prefixes = procutil.environment_prefixes()
        self.current = ItemOutcome()
        self.send = send
        self.status = status
        self.worker = -1

    def take(self) -> ItemOutcome:
        outcome, self.current = self.current, ItemOutcome()
        return outcome

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_call(self, item: pytest.Item) -> None:
        self.status.phase("call")

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> None:
        self.status.phase("teardown")

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        outcome = yield
        report = outcome.get_result()
        if call.excinfo is not None and report.failed:
            self.current.where[call.when] = locate(call.excinfo.tb, str(item.path), self.root, self.prefixes)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.current.reports.append(report)


def locate(
    tb: TracebackType | None, test_file: str, root: str, prefixes: tuple[str, ...]
) -> tuple[int | None, str, int | None]:
    """(line in the test file, deepest workspace file, its line) of a traceback."""
    test_line: int | None = None
    deep_path, deep_line = "", None
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename == test_file:
            test_line = tb.tb_lineno
        if procutil.in_workspace(filename, root, prefixes):
            deep_path, deep_line = filename, tb.tb_lineno
        tb = tb.tb_next
    return test_line, deep_path, deep_line


def classify(item: pytest.Item, outcome: ItemOutcome) -> dict[str, Any]:
    """One result (the fields of ``TestResult``) from an item's phase reports."""
    by_when = {r.when: r for r in outcome.reports}
    setup, call, teardown = by_when.get("setup"), by_when.get("call"), by_when.get("teardown")
    status, deciding = Status.PASSED, call or setup
    if setup is not None and setup.failed:
        status, deciding = Status.ERROR, setup
    elif setup is not None and setup.skipped:
        status = Status.XFAILED if hasattr(setup, "wasxfail") else Status.SKIPPED
        deciding = setup
    elif call is not None:
        if call.failed:
            status = Status.FAILED
        elif call.skipped:
            status = Status.XFAILED if hasattr(call, "wasxfail") else Status.SKIPPED
        elif hasattr(call, "wasxfail"):
            status = Status.XPASSED
    if teardown is not None and teardown.failed and status is not Status.FAILED and status is not Status.ERROR:
        status, deciding = Status.ERROR, teardown
    path, def_line = item.location[0], (item.location[1] + 1 if item.location[1] is not None else None)
    result: dict[str, Any] = {
        "nodeid": item.nodeid,
        "status": status.value,
        "duration_ms": round(sum(r.duration for r in outcome.reports) * 1000.0, 3),
        "path": path,
        "line": def_line,
    }
    if deciding is None:
        return result
    result["message"], result["longrepr"] = _describe(status, deciding)
    if status in (Status.SKIPPED, Status.XFAILED) and isinstance(deciding.longrepr, tuple):
        skip_path, skip_line, _ = deciding.longrepr
        if os.path.realpath(skip_path) == os.path.realpath(str(item.path)):
            result["line"] = skip_line
    where = outcome.where.get(deciding.when)
    if where is not None:
        test_line, deep_path, deep_line = where
        if test_line is not None:
            result["line"] = test_line
        result["deep_path"], result["deep_line"] = deep_path, deep_line
    return result


def _describe(status: Status, report: Any) -> tuple[str, str]:
    if status is Status.XFAILED or status is Status.XPASSED:
        reason = getattr(report, "wasxfail", "")
        return (f"xfail: {reason}" if reason else "xfail"), ""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):  # a skip: (path, line, "Skipped: reason")
        return str(longrepr[2]), ""
    text = report.longreprtext or ""
    crash = getattr(longrepr, "reprcrash", None)
    message = crash.message if crash is not None else (text.strip().splitlines() or [""])[-1]
    if status is Status.ERROR and report.when != "call":
        message = f"error in {report.when}: {message}"
    return _clip(message, 2000), _clip(text, LONGREPR_LIMIT)


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[... tach-ls: {len(text) - limit} more characters not shown]\n"


def install_recorder(config: pytest.Config, root: str, send: Send, files: WorkerFiles) -> Recorder:
    """Register the result recorder (done before the job arrives: registering rebuilds pluggy's hook tables)."""
    recorder = Recorder(root, send, worker_status.StatusWriter(files.st))
    config.pluginmanager.register(recorder, "tach-ls-recorder")
    deps_audit.install(root)  # in the worker: the zygote's own opens never pass through it
    namespaces.restore_basetemp(config)
    return recorder


def run_items(
    items: list[pytest.Item], *, worker: int, recorder: Recorder, files: WorkerFiles, send: Send, coverage: Any = None
) -> None:
    """Run ``items`` in order through pytest's protocol, reporting each one.

    ``coverage`` (a ``tracer.Collector`` attached to this worker's ring)
    brackets each item: its lines are in the ring, under test id index + 1,
    before its ``test_finished`` is sent. What ran before the first item
    (spawn mode's collection) is outside any test; between two items only
    tach-ls runs here, so a line another thread ran in that gap goes to the
    next item rather than costing a look at every file per test.
    """
    recorder.worker = worker
    for index, item in enumerate(items):
        nextitem = items[index + 1] if index + 1 < len(items) else None
        out_at, err_at = output_offsets()
        recorder.status.begin(index + 1, out_at, err_at)  # no message: the supervisor reads it if the test dies
        if coverage is not None and index == 0:
            coverage.begin_test(index + 1)
        deps_audit.start()
        item.config.hook.pytest_runtest_protocol(item=item, nextitem=nextitem)
        opened, endpoints, spawned = deps_audit.stop()
        if coverage is not None:
            coverage.end_test(index + 1)
        result = classify(item, recorder.take())
        result["opened"], result["endpoints"], result["spawned"] = opened, endpoints, spawned
        if coverage is not None:
            result["coverage_id"] = index + 1
        output_offsets()
        result["stdout"] = procutil.read_from(files.out, out_at)
        result["stderr"] = procutil.read_from(files.err, err_at)
        result["worker"] = os.getpid()
        result.update(namespaces.result_fields())
        send("test_finished", worker=worker, result=result)
        recorder.status.phase("done")


def finish(send: Send, worker: int, code: int = 0, learned: dict[str, Any] | None = None) -> None:
    """Report the batch done (with what it warmed, see ``warmth``) and leave without atexit or session end."""
    try:
        send("worker_done", worker=worker, learned=learned or {})
        output_offsets()
    finally:
        os._exit(code)


def report_internal_error(send: Send, worker: int) -> None:
    """A bug in tach-ls inside a worker: say so on the wire, then exit non-zero."""
    import traceback

    buffer = io.StringIO()
    traceback.print_exc(file=buffer)
    try:
        send("worker_error", worker=worker, text=_clip(buffer.getvalue(), LONGREPR_LIMIT))
    finally:
        os._exit(3)
