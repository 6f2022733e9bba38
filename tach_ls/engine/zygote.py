"""The warm process in the project's interpreter: entry point and base layer.

Standard library and pytest only. The supervisor starts this file as a script,
``<project python> zygote.py ROLE SPEC_JSON [ARGS]``; it loads its sibling
modules as the private package ``_tach_engine`` (never touching ``sys.path``,
so a project module called ``wire`` or ``results`` is not shadowed) and runs
one role:

- ``base``: import pytest and the third-party modules the last collection
  imported (the preload list, cached by the supervisor), then serve
  ``fork_collected`` requests by forking the collected layer
  (``collected.py``) and reporting its exit. Rebuilt only when the
  environment or the configuration changes.
- ``collected``: spawn mode's collector, a collected layer started directly
  that never forks workers.
- ``batch``: spawn mode's worker, a fresh interpreter that collects the files
  of one batch and runs it in-process (a debug batch waits for the debugger
  after collecting, as a forked debug worker does).

Every role dies with its parent (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import json
import os
import selectors
import signal
import sys
import time
import warnings
from typing import Any, NoReturn

PACKAGE = "_tach_engine"
MIN_PYTHON = (3, 10)


def _bootstrap() -> Any:
    """Load this folder as the package ``_tach_engine`` and return its ``zygote`` module."""
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and os.path.abspath(sys.path[0] or os.curdir) == here:
        del sys.path[0]
    if PACKAGE not in sys.modules:
        spec = importlib.machinery.ModuleSpec(PACKAGE, None, is_package=True)
        package = importlib.util.module_from_spec(spec)
        package.__path__ = [here]
        sys.modules[PACKAGE] = package
    return importlib.import_module(PACKAGE + ".zygote")


def _watch_threads() -> None:
    """Remember the module after whose import a second native thread first showed up."""
    from . import procutil

    state: dict[str, Any] = {"count": procutil.native_thread_count(), "last": None}

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event != "import" or not procutil.THREAD_WATCH["on"]:
            return
        if procutil.native_thread_count() > state["count"]:
            procutil.THREAD_WATCH["on"] = False
            procutil.THREAD_WATCH["culprit"] = state["last"]
            return
        state["last"] = procutil.THREAD_WATCH["last"] = args[0]

    sys.addaudithook(hook)


class BaseLayer:
    """The base process: preloaded modules, and one collected layer forked from it."""

    def __init__(self, conn: Any, spec: dict[str, Any]) -> None:
        from . import wire

        self.conn = conn
        self.receiver = wire.Receiver(conn)
        self.spec = spec
        self.selector = selectors.DefaultSelector()
        self.collected: tuple[int, int, int] | None = None  # (pid, pidfd, generation)

    def send(self, op: str, **fields: Any) -> None:
        from . import wire

        wire.send(self.conn, op, **fields)

    def preload(self, names: list[str]) -> int:
        loaded = 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name in names:
                if name in sys.modules:
                    continue
                try:
                    importlib.import_module(name)
                    loaded += 1
                except BaseException:  # noqa: BLE001 (a module that fails or exits here is simply not preloaded)
                    sys.modules.pop(name, None)
        return loaded

    def serve(self) -> NoReturn:
        from . import wire

        self.selector.register(self.conn, selectors.EVENT_READ, None)
        while True:
            for key, _ in self.selector.select():
                if key.data is None:
                    message = self.receiver.recv()
                    if message is None:
                        self._stop_collected()
                        os._exit(0)
                    wire.dispatch(self, message)
                else:
                    self._reap()

    def on_fork_collected(self, msg: dict[str, Any]) -> None:
        import gc

        from . import collected

        self._stop_collected()
        generation = int(msg["generation"])
        gc.disable()
        gc.freeze()
        pid = os.fork()
        if pid == 0:
            try:
                self.selector.close()
                self.conn.close()
                gc.enable()
                collected.main(self.spec, generation, parent=os.getppid())
            finally:
                os._exit(3)
        gc.enable()
        pidfd = os.pidfd_open(pid)
        self.selector.register(pidfd, selectors.EVENT_READ, pid)
        self.collected = (pid, pidfd, generation)

    def on_shutdown(self, msg: dict[str, Any]) -> None:
        self._stop_collected()
        os._exit(0)

    def _stop_collected(self) -> None:
        if self.collected is None:
            return
        os.kill(self.collected[0], signal.SIGKILL)  # its workers follow through PR_SET_PDEATHSIG
        self._reap()

    def _reap(self) -> None:
        from . import procutil

        assert self.collected is not None
        pid, pidfd, generation = self.collected
        self.collected = None
        self.selector.unregister(pidfd)
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        try:
            self.send("collected_exited", generation=generation, pid=pid, status=procutil.exit_status(status))
        except OSError:  # the supervisor is already gone (shutdown): nobody to tell
            pass


def _base(spec: dict[str, Any]) -> NoReturn:
    from . import procutil, wire

    conn = wire.connect(spec["connect"])
    wire.send(conn, "hello", role="base", pid=os.getpid(), python=sys.executable, version=list(sys.version_info[:3]))
    try:
        import pytest
    except ImportError as exc:
        wire.send(
            conn,
            "fatal",
            layer="base",
            exit=4,
            reason=f"pytest is not importable in {sys.executable} ({exc}); install it with: "
            f"{sys.executable} -m pip install pytest",
        )
        os._exit(4)
    from . import namespaces

    isolated = namespaces.start_session(spec, lambda op, **fields: wire.send(conn, op, **fields))  # once: forks inherit it
    started = time.monotonic()
    layer = BaseLayer(conn, spec)
    from . import tracer

    tracer.preload(spec)  # coverage.py's C tracer, imported once for every collected layer
    loaded = layer.preload(spec.get("preload", []))
    threads = procutil.native_thread_count()
    wire.send(
        conn,
        "base_ready",
        detail=f"pytest {pytest.__version__}, {loaded} modules preloaded in {time.monotonic() - started:.2f}s"
        + (f"; {isolated}" if isolated else ""),
        threads=threads,
    )
    layer.serve()


def _collected(spec: dict[str, Any]) -> NoReturn:
    from . import collected

    collected.main(spec, int(spec.get("generation", 1)), parent=spec["parent"], spawn_mode=True)


def _batch(spec: dict[str, Any], worker: int, nodeids: list[str]) -> NoReturn:
    """Spawn mode: collect the batch's files in this fresh interpreter and run the batch."""
    import pytest
    from _pytest.config import _prepareconfig

    from . import debugger, fork_worker, tracer, wire

    conn = wire.connect(spec["connect"])

    def send(op: str, **fields: Any) -> None:
        wire.send(conn, op, **fields)

    send("hello", role="batch", pid=os.getpid(), worker=worker)

    try:
        from . import namespaces

        namespaces.start_session(spec, send)  # a fresh interpreter per batch: probe here (become_worker enters)
        debug = bool(spec.get("debug"))
        files = fork_worker.become_worker(spec["parent"], spec["rundir"], [], skip=debugger.ISOLATION_SKIP if debug else ())
        coverage = tracer.from_spec(spec)
        if coverage is not None:
            tracer.hand_over(coverage, coverage.new_ring(), conn, worker)
            coverage.start()  # collection's lines land under test id 0 at the first begin_test
            if coverage.note:
                send("warning", text=coverage.note)
        send("worker_started", worker=worker, pid=os.getpid(), isolation=namespaces.applied(), **files.started_fields())
        rootdir = spec.get("rootdir") or spec["root"]
        paths = sorted({os.path.join(rootdir, n.split("::", 1)[0]) for n in nodeids})
        root = os.path.realpath(spec["root"])
        if root not in sys.path:
            sys.path.insert(0, root)

        class Batch:
            @pytest.hookimpl(tryfirst=True)
            def pytest_runtestloop(self, session: pytest.Session) -> bool:
                index = {item.nodeid: item for item in session.items}
                items = [index[n] for n in nodeids if n in index]
                for nodeid in nodeids:
                    if nodeid not in index:
                        send("test_finished", worker=worker, result={"nodeid": nodeid, "status": "error",
                             "message": "not collected in the spawned interpreter"})  # fmt: skip
                recorder = fork_worker.install_recorder(session.config, root, send, files)
                if debug and items:
                    path, line = items[0].location[0], items[0].location[1]
                    if not debugger.attach_point(send, worker, items[0].nodeid, path, None if line is None else line + 1):
                        fork_worker.finish(send, worker)
                fork_worker.run_items(items, worker=worker, recorder=recorder, files=files, send=send, coverage=coverage)
                fork_worker.finish(send, worker)
                return True

        saved = sys.stdout
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        config = _prepareconfig(list(spec.get("pytest_args", [])) + ["-s"] + paths, plugins=[Batch()])
        sys.stdout = saved
        config.hook.pytest_cmdline_main(config=config)
        send("worker_error", worker=worker, text="pytest stopped before running the batch")
        os._exit(3)
    except BaseException:  # noqa: BLE001
        fork_worker.report_internal_error(send, worker)
    os._exit(3)


def main(argv: list[str]) -> NoReturn:
    from . import procutil

    role, spec = argv[0], json.loads(argv[1])
    procutil.die_with_parent(spec["parent"])
    if sys.version_info < MIN_PYTHON:
        sys.stderr.write(f"tach-ls needs Python 3.10 to 3.13 in the project; {sys.executable} is {sys.version}\n")
        os._exit(4)
    os.chdir(spec["root"])
    _watch_threads()
    if role == "base":
        _base(spec)
    if role == "collected":
        _collected(spec)
    if role == "batch":
        _batch(spec, int(argv[2]), json.loads(argv[3]))
    sys.stderr.write(f"tach-ls zygote: unknown role {role!r}\n")
    os._exit(4)


if __name__ == "__main__":
    _bootstrap().main(sys.argv[1:])
