"""The collected layer: real pytest collection, an item index, and the workers it forks.

Standard library and pytest only. Forked from the base layer (or, in spawn
mode, started as its own process), it builds pytest's config with the
project's ini, plugins and conftest files, runs ``Session.perform_collect``
through pytest's own ``pytest_cmdline_main``, and then takes over
``pytest_runtestloop`` to serve the supervisor:

- ``select``: resolve paths, node ids, ``-k`` and ``-m`` against the index;
- the standby child: forked when idle, prefaulted, waiting on a pipe whose
  write end goes to the supervisor (``standby_pipe``), which writes a job
  into it itself: a click skips this layer. The layer keeps no write end, so
  it releases a standby (``on_warm``) by asking the supervisor to close its
  end (``standby_released``); it forks the next standby when it is idle;
- ``spawn``: fork a fresh worker for a batch (when there is no standby, or
  for a debug job: it must stay on the host's network, see ``debugger``);
- ``kill``: kill workers' process groups (cancellation);
- reaping: each child has a pidfd in the selector; its exit status goes to
  the supervisor as ``worker_exited``.

After collection it reports the workspace files it imported (with their
stat), the folders it walked and the config files it read, so the supervisor
can tell when this layer, or the base under it, is stale.
"""

from __future__ import annotations

import gc
import json
import os
import selectors
import sys
import time
import traceback
from typing import Any, NoReturn

import pytest

from . import debugger, fork_worker, namespaces, procutil, tracer, warmth, wire

ITEMS_PER_MESSAGE = 400
LOCK_FILES = (
    "pyproject.toml", "setup.cfg", "setup.py", "tox.ini", "pytest.ini", ".pytest.ini",
    "poetry.lock", "uv.lock", "Pipfile.lock", "pdm.lock", "requirements.txt",
    "requirements-dev.txt", "requirements-test.txt",
)  # fmt: skip


class ZygotePlugin:
    """Registered into the project's pytest config: records collection, then serves."""

    def __init__(self, layer: CollectedLayer) -> None:
        self.layer = layer
        self.collect_errors: list[dict[str, Any]] = []
        self.dirs: set[str] = set()

    def pytest_collectstart(self, collector: pytest.Collector) -> None:
        path = getattr(collector, "path", None)
        if path is not None and os.path.isdir(path):
            self.dirs.add(str(path))

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collect_errors.append(
                {
                    "nodeid": report.nodeid,
                    "message": fork_worker._clip(report.longreprtext, fork_worker.LONGREPR_LIMIT),
                }
            )

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool:
        self.layer.serve(session, self)
        return True


class CollectedLayer:
    """State of the collected layer: the session, its items, and live children."""

    def __init__(self, conn: Any, spec: dict[str, Any], generation: int, spawn_mode: bool) -> None:
        self.conn = conn
        self.receiver = wire.Receiver(conn)
        self.spec = spec
        self.generation = generation
        self.spawn_mode = spawn_mode
        self.root = os.path.realpath(spec["root"])
        self.session: pytest.Session | None = None
        self.index: dict[str, pytest.Item] = {}
        self.selector = selectors.DefaultSelector()
        self.children: dict[int, tuple[int, int | None]] = {}  # pid -> (pidfd, worker id)
        self.standby: int | None = None  # pid of the standby child (its job pipe is the supervisor's)
        self.inherited_modules = set(sys.modules)
        self.must_rewrite: list[str] = []
        self.warm_baseline = warmth.snapshot()
        self.thread_warned = False
        self.coverage = tracer.from_spec(spec)
        self.child_ring: Any = None  # the coverage ring of the child being forked (made right before the fork)

    def send(self, op: str, **fields: Any) -> None:
        wire.send(self.conn, op, **fields)

    # -- collection ---------------------------------------------------------

    def run_pytest(self) -> int:
        """Configure and collect with the project's settings; ``serve`` runs inside."""
        from _pytest.config import _prepareconfig

        if self.coverage is not None:
            self.coverage.start()  # before the config: conftest files and collection imports are measured too
        if self.root not in sys.path:
            sys.path.insert(0, self.root)  # as `python -m pytest` from the root does
        saved = sys.stdout
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (pytest's terminal reporter binds here)
        plugin = ZygotePlugin(self)
        args = list(self.spec.get("pytest_args", [])) + ["-s"] + list(self.spec.get("collect_args", []))
        try:
            config = _prepareconfig(args, plugins=[plugin])
        except pytest.UsageError as exc:
            sys.stdout = saved
            self.send("fatal", layer="collected", reason=f"pytest usage error: {exc}", exit=4)
            return 4
        self._saved_stdout = saved
        code = config.hook.pytest_cmdline_main(config=config)
        sys.stdout = saved
        if self.session is None:  # pytest stopped before our runtestloop (e.g. an error in a conftest)
            self.send("fatal", layer="collected", reason="pytest stopped before collection finished", exit=int(code))
        return int(code)

    def _report_collection(self, session: pytest.Session, plugin: ZygotePlugin) -> None:
        items = session.items
        self.index = {item.nodeid: item for item in items}
        for start in range(0, len(items), ITEMS_PER_MESSAGE):
            chunk = items[start : start + ITEMS_PER_MESSAGE]
            self.send(
                "items",
                items=[[i.nodeid, i.location[0], (i.location[1] or 0) + 1] for i in chunk],
            )
        for error in plugin.collect_errors:
            self.send("collect_error", **error)
        prefixes = procutil.environment_prefixes()
        workspace: dict[str, Any] = {}
        external: list[str] = []
        for name, module in list(sys.modules.items()):
            filename = getattr(module, "__file__", None) or ""
            if procutil.in_workspace(filename, self.root, prefixes):
                workspace[filename] = procutil.stat_of(filename)
            elif name not in self.inherited_modules and filename:
                external.append(name)
        config = session.config
        config_files = [str(config.inipath)] if config.inipath else []
        config_files += [f for f in workspace if os.path.basename(f) == "conftest.py"]
        config_files += [os.path.join(self.root, n) for n in LOCK_FILES]
        config_files.append(os.path.realpath(sys.executable))
        for path in sys.path:
            if path.endswith(("site-packages", "dist-packages")):
                config_files.append(path)  # its mtime moves when a package is installed or removed
        base_files = {path: procutil.stat_of(path) for path in config_files}
        rewrite = getattr(config.pluginmanager, "rewrite_hook", None)
        must_rewrite = self.must_rewrite = sorted(getattr(rewrite, "_must_rewrite", ()) or ())
        self.warm_baseline = warmth.snapshot()
        self.send(
            "ready",
            generation=self.generation,
            rootdir=str(config.rootpath),
            count=len(items),
            modules=workspace,
            dirs={d: [procutil.stat_of(d), procutil.dir_listing(d)] for d in sorted(plugin.dirs)},
            base_files=base_files,
            preload=[n for n in external if not _rewritten(n, must_rewrite)],
            threads=procutil.native_thread_count(),
        )

    # -- serving ------------------------------------------------------------

    def serve(self, session: pytest.Session, plugin: ZygotePlugin) -> None:
        sys.stdout = self._saved_stdout
        self.session = session
        tmp_factory = getattr(session.config, "_tmp_path_factory", None)
        if tmp_factory is not None:
            tmp_factory.getbasetemp()  # once here, shared by every worker (numbered dirs are race-safe)
        self._report_collection(session, plugin)
        tracer.report_outside(self.coverage, self.send, self.generation, first=True)
        self.selector.register(self.conn, selectors.EVENT_READ, None)
        while True:
            # The next standby is forked only when no worker runs: forking and prefaulting would steal their CPU.
            want_standby = (
                not self.spawn_mode and self.standby is None and not self.children and self.spec.get("standby", True)
            )
            events = self.selector.select(timeout=0 if want_standby else None)
            if not events and want_standby:
                self._fork_standby()
                continue
            for key, _ in events:
                if key.data is None:
                    message = self.receiver.recv()
                    if message is None:
                        self._shutdown()
                    wire.dispatch(self, message)
                else:
                    self._reap(key.data)

    def on_select(self, msg: dict[str, Any]) -> None:
        from _pytest.mark import deselect_by_keyword, deselect_by_mark

        assert self.session is not None
        items = list(self.session.items)
        missing: list[str] = []
        args = msg.get("args") or []
        if args:
            chosen: dict[str, pytest.Item] = {}
            for arg in args:
                hits = [i for i in items if procutil.arg_matches(i.nodeid, arg)]
                if not hits:
                    missing.append(arg)
                for item in hits:
                    chosen.setdefault(item.nodeid, item)
            items = [i for i in items if i.nodeid in chosen]
        config = self.session.config
        error = ""
        saved = (config.option.keyword, config.option.markexpr)
        try:
            config.option.keyword = msg.get("keyword") or ""
            config.option.markexpr = msg.get("markexpr") or ""
            deselect_by_keyword(items, config)
            deselect_by_mark(items, config)
        except pytest.UsageError as exc:
            error = str(exc)
        finally:
            config.option.keyword, config.option.markexpr = saved
        self.send("selected", req=msg["req"], nodeids=[i.nodeid for i in items], missing=missing, error=error)

    def on_spawn(self, msg: dict[str, Any]) -> None:
        worker, nodeids, debug = msg["worker"], msg["nodeids"], bool(msg.get("debug"))
        unknown = [n for n in nodeids if n not in self.index]
        if unknown:
            self.send("spawn_failed", worker=worker, reason=f"not in this collection: {unknown[:3]}")
            return
        self._fork(json.dumps({"worker": worker, "nodeids": nodeids, "debug": debug}).encode() + b"\n")

    def on_warm(self, msg: dict[str, Any]) -> None:
        """Take on what workers warmed; the next standby is forked from the warmer state."""
        if not warmth.apply(msg.get("modules", []), msg.get("patterns", []), self.must_rewrite):
            return
        self.warm_baseline = warmth.snapshot()
        if self.standby is not None:
            # The supervisor closes its end unless it gave the standby a job meanwhile: the standby exits
            # (or runs that job), and once it is reaped a warmer one is forked.
            self.send("standby_released", pid=self.standby)
            self.standby = None

    def on_kill(self, msg: dict[str, Any]) -> None:
        wanted = set(msg["workers"])
        for pid, (_, worker) in self.children.items():
            if worker in wanted:
                procutil.kill_group(pid)

    def on_shutdown(self, msg: dict[str, Any]) -> None:
        self._shutdown()

    def _shutdown(self) -> NoReturn:
        for pid in list(self.children):
            procutil.kill_group(pid)
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        os._exit(0)

    # -- children -----------------------------------------------------------

    def _fork_standby(self) -> None:
        pid, pipe = self._fork(None)
        assert pipe is not None
        try:
            wire.send_fds(self.conn, "standby_pipe", [pipe], pid=pid)
        finally:
            os.close(pipe)  # the supervisor's copy is the only one: only it writes jobs, only it can release
        self.standby = pid

    def _fork(self, job: bytes | None) -> tuple[int, int | None]:
        """Fork a worker with its job, or a standby waiting for one on a pipe."""
        read_end, write_end = os.pipe() if job is None else (-1, -1)
        self._warn_threads()
        self.child_ring = tracer.ring_for_child(self.coverage, self.send, self.generation)
        gc.disable()
        gc.freeze()
        pid = os.fork()
        if pid == 0:
            self._child(job, read_end, write_end)
        gc.enable()
        if self.child_ring is not None:
            self.child_ring.close()  # the child has it, and hands it to the supervisor
            self.child_ring = None
        if job is None:
            os.close(read_end)
        pidfd = os.pidfd_open(pid)
        self.selector.register(pidfd, selectors.EVENT_READ, pid)
        worker = json.loads(job)["worker"] if job is not None else None
        self.children[pid] = (pidfd, worker)
        return pid, (write_end if job is None else None)

    def _child(self, job: bytes | None, read_end: int, write_end: int) -> NoReturn:
        worker = -1
        send = self.send
        try:
            close = [fd for fd, _ in self.children.values()] + [self.selector.fileno()]
            if write_end >= 0:
                close.append(write_end)
            debug = job is not None and bool(json.loads(job).get("debug"))
            skip = debugger.ISOLATION_SKIP if debug else ()
            files = fork_worker.become_worker(os.getppid(), self.spec["rundir"], close, skip=skip)
            assert self.session is not None
            recorder = fork_worker.install_recorder(self.session.config, self.root, send, files)
            if job is None:
                if self.spec.get("prefault", True):
                    procutil.prefault_private_memory()
                send("standby_ready", pid=os.getpid())
                job = _read_line(read_end)
                if not job:
                    os._exit(0)  # the zygote let the standby go
            task = json.loads(job)
            worker = task["worker"]
            tracer.hand_over(self.coverage, self.child_ring, self.conn, worker)
            send("worker_started", worker=worker, pid=os.getpid(), isolation=namespaces.applied(), **files.started_fields())
            items = [self.index[n] for n in task["nodeids"]]
            if task.get("debug") and not _debug_attach(send, worker, items[0]):
                fork_worker.finish(send, worker)
            coverage = self.coverage if self.child_ring is not None else None
            fork_worker.run_items(items, worker=worker, recorder=recorder, files=files, send=send, coverage=coverage)
            fork_worker.finish(send, worker, learned=warmth.learned(self.warm_baseline, self.root))
        except BaseException:  # noqa: BLE001
            fork_worker.report_internal_error(send, worker)
        os._exit(0)

    def _reap(self, pid: int) -> None:
        pidfd, worker = self.children.pop(pid)
        self.selector.unregister(pidfd)
        os.close(pidfd)
        procutil.kill_group(pid)  # whatever the test left running dies with it
        _, status = os.waitpid(pid, 0)
        if self.standby == pid:
            self.standby = None
        # A standby's worker id is the supervisor's to know (it wrote the job): it goes by the pid.
        self.send("worker_exited", worker=worker, pid=pid, status=procutil.exit_status(status))

    def _warn_threads(self) -> None:
        count = procutil.native_thread_count()
        if count > 1 and not self.thread_warned:
            self.thread_warned = True
            culprit = procutil.THREAD_WATCH["culprit"] or procutil.THREAD_WATCH["last"] or "unknown module"
            self.send(
                "warning",
                text=(
                    f"{count - 1} extra thread(s) alive in the zygote at fork (first seen after importing "
                    f"{culprit!r}); forked workers do not inherit them and may hang or crash. "
                    "If tests misbehave, use --mode spawn."
                ),
            )


def _debug_attach(send: fork_worker.Send, worker: int, item: pytest.Item) -> bool:
    path, line = item.location[0], item.location[1]
    return debugger.attach_point(send, worker, item.nodeid, path, line + 1 if line is not None else None)


def _rewritten(name: str, must_rewrite: list[str]) -> bool:
    return any(name == m or name.startswith(m + ".") for m in must_rewrite)


def _read_line(fd: int) -> bytes:
    chunks = []
    while True:
        data = os.read(fd, 65536)
        if not data:
            return b""
        chunks.append(data)
        if data.endswith(b"\n"):
            os.close(fd)
            return b"".join(chunks)


def main(spec: dict[str, Any], generation: int, parent: int, spawn_mode: bool = False) -> NoReturn:
    """Entry of the collected layer (a forked child of the base, or its own process)."""
    procutil.die_with_parent(parent)
    conn = wire.connect(spec["connect"])
    wire.send(conn, "hello", role="collected", generation=generation, pid=os.getpid())
    layer = CollectedLayer(conn, spec, generation, spawn_mode)
    started = time.monotonic()
    try:
        code = layer.run_pytest()
    except BaseException:  # noqa: BLE001
        wire.send(conn, "fatal", layer="collected", reason=traceback.format_exc()[-4000:], exit=3)
        os._exit(3)
    wire.send(conn, "log", text=f"collected layer exiting ({code}) after {time.monotonic() - started:.1f}s")
    os._exit(code if isinstance(code, int) else 3)
