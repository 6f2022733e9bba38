"""The zygote's layers as the supervisor sees them: processes, freshness, restarts.

Server side, driven by ``Supervisor`` on its loop thread. Owns:

- the base process (``zygote.py base``) and the collected layer it forks, or
  in spawn mode a standalone collector plus one fresh interpreter per batch;
- the fingerprints the collected layer reported (stat of every workspace
  module it imported, of the folders it walked, and of the config, lock
  files, interpreter and site-packages), checked before every run so no test
  ever runs against stale code: a changed workspace module re-forks the
  collected layer from the base, a changed config or environment rebuilds
  the base (the stats are skipped while an inotify watch on their folders
  saw nothing, see ``fswatch``);
- the standby child's job pipe: a click's batch is written straight into it;
- the preload list cache (third-party modules the collection imported,
  remembered under the workspace's cache folder for the next base);
- restarts with bounded exponential backoff after a layer dies.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from typing import TYPE_CHECKING, Any

from . import fswatch, wire
from .procutil import dir_listing, stat_of
from .runs import RunMode, WorkerSlot, status_words
from .status import EngineState

if TYPE_CHECKING:
    from .runs import Run
    from .supervisor import Supervisor, _Conn

PRELOAD_CACHE = "zygote-preload.json"
BACKOFF_FIRST = 0.1
BACKOFF_MAX = 5.0


class LayerSet:
    """Base + collected layers (fork mode) or collector + batch processes (spawn mode)."""

    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup
        self.generation = 0
        self.base: subprocess.Popen[bytes] | None = None
        self.base_pidfd: int | None = None
        self.base_conn: _Conn | None = None
        self.collected_conn: _Conn | None = None
        self.is_ready = False
        self.busy = False
        self.fatal_exit = 3
        self.retry_at: float | None = None
        self.started_at: float | None = None
        self._retry_what = ""
        self.failures = 0
        self.failed_at = 0.0
        self.base_detail = ""
        self.fingerprint_collected: dict[str, Any] = {}
        self.fingerprint_base: dict[str, Any] = {}
        self.fingerprint_dirs: dict[str, Any] = {}
        self._next_worker = 0
        self._batches: dict[int, tuple[subprocess.Popen[bytes], int]] = {}
        self._warm_modules: set[str] = set()
        self._warm_patterns: set[tuple[Any, ...]] = set()
        self._watch: fswatch.DirWatch | None = None
        self._watch_verified = False
        self.standby: tuple[int, int] | None = None
        """(pid, write end of its job pipe): the collected layer's standby child, ours to give a job."""

    @property
    def spawn_mode(self) -> bool:
        return self.sup.config.mode == RunMode.SPAWN

    def new_worker_id(self) -> int:
        self._next_worker += 1
        return self._next_worker

    # -- starting and stopping ---------------------------------------------------

    def start(self) -> None:
        self.busy = True
        self.is_ready = False
        self.started_at = time.monotonic()
        rebuilding = self.generation > 0
        self.sup.set_status(EngineState.REBUILDING if rebuilding else EngineState.STARTING, "base")
        if self.spawn_mode:
            self.generation += 1
            self._launch(["collected", self.sup.spec(generation=self.generation)])
            return
        self._launch(["base", self.sup.spec(preload=self._read_preload())])

    def _launch(self, argv: list[str]) -> None:
        self.sup.clear_items()
        self.base = self.sup.popen(argv, "zygote.log")
        self.base_pidfd = os.pidfd_open(self.base.pid)
        self.sup.add_proc(self.base_pidfd, self._base_exited)

    def stop(self) -> None:
        """Stop every process of the engine and wait for them."""
        self.is_ready = False
        for conn in (self.collected_conn, self.base_conn):
            if conn is not None:
                try:
                    wire.send(conn.sock, "shutdown")
                except OSError:
                    pass
        proc = self.base
        self._forget_base()
        if proc is not None:
            try:
                proc.wait(2.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for popen, pidfd in list(self._batches.values()):
            popen.kill()
            popen.wait()
            self.sup.remove_proc(pidfd)
        self._batches.clear()

    def _forget_base(self) -> None:
        self.drop_standby()
        self._unwatch()
        if self.base_pidfd is not None:
            self.sup.remove_proc(self.base_pidfd)
        self.base, self.base_pidfd = None, None
        for conn in (self.collected_conn, self.base_conn):
            if conn is not None:
                self.sup.drop_conn(conn)
        self.collected_conn = self.base_conn = None

    def _restart(self, what: str, reason: str) -> None:
        """Rebuild ``what`` ('base' or 'collected') after ``reason``, later if it keeps failing."""
        self.is_ready = False
        self.busy = True
        self.failures += 1
        if self.failures > self.sup.config.max_restarts:
            self.busy = False
            self.fatal_exit = 3
            self.failed_at = time.monotonic()
            self.sup.set_status(EngineState.FAILED, what, f"gave up after {self.failures - 1} restarts: {reason}")
            return
        delay = 0.0 if self.failures == 1 else min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (self.failures - 2))
        self.sup.set_status(EngineState.REBUILDING, what, reason)
        self.retry_at = time.monotonic() + delay
        self._retry_what = what

    @property
    def start_deadline(self) -> float | None:
        """When a layer still starting is given up on (a conftest or an import that hangs)."""
        if not self.busy or self.retry_at is not None or self.started_at is None:
            return None
        return self.started_at + self.sup.config.start_timeout

    def check_retry(self, now: float) -> None:
        deadline = self.start_deadline
        if deadline is not None and now >= deadline:
            self._kill_base()
            self.busy, self.is_ready = False, False
            self.fatal_exit = 3
            self.failed_at = now
            limit = self.sup.config.start_timeout
            self.sup.zygote_lost("startup timed out")
            self.sup.set_status(
                EngineState.FAILED, "collected", f"the zygote did not finish starting and collecting within {limit:g}s "
                "(does a conftest.py or an imported module hang?)",
            )  # fmt: skip
            return
        if self.retry_at is None or now < self.retry_at:
            return
        self.retry_at = None
        if self._retry_what == "collected" and self.base_conn is not None and not self.spawn_mode:
            self._fork_collected()
        else:
            self._kill_base()
            self.start()

    def _kill_base(self) -> None:
        proc = self.base
        self._forget_base()
        if proc is not None:
            proc.kill()
            proc.wait()

    # -- messages ----------------------------------------------------------------

    def hello(self, conn: _Conn, msg: dict[str, Any]) -> None:
        if msg["role"] == "base":
            self.base_conn = conn
        elif msg["role"] == "collected":
            if conn.generation != self.generation:
                self.sup.drop_conn(conn)
                return
            if self.collected_conn is not None:
                self.sup.drop_conn(self.collected_conn)
            self.collected_conn = conn

    def base_ready(self, msg: dict[str, Any]) -> None:
        self.base_detail = msg.get("detail", "")
        self._fork_collected()

    def _fork_collected(self) -> None:
        assert self.base_conn is not None
        self.drop_standby()
        if self.collected_conn is not None:
            self.sup.drop_conn(self.collected_conn)
            self.collected_conn = None
        self.is_ready = False
        self.busy = True
        self.started_at = time.monotonic()
        self.generation += 1
        self.sup.clear_items()
        self._warm_modules.clear()
        self._warm_patterns.clear()
        state = EngineState.REBUILDING if self.generation > 1 else EngineState.STARTING
        self.sup.set_status(state, "collected", f"collecting (base: {self.base_detail})")
        wire.send(self.base_conn.sock, "fork_collected", generation=self.generation)

    def collected_ready(self, msg: dict[str, Any]) -> None:
        self.fingerprint_collected = msg["modules"]
        self.fingerprint_dirs = {path: (seen, listing) for path, (seen, listing) in msg["dirs"].items()}
        self.fingerprint_base = msg["base_files"]
        self._watch_fingerprints()
        self._write_preload(msg.get("preload", []))
        self.is_ready, self.busy, self.failures = True, False, 0
        detail = f"{msg['count']} tests collected"
        if self.sup.collect_errors:
            detail += f", {len(self.sup.collect_errors)} collection errors"
        self.sup.set_status(EngineState.READY, "collected", detail)

    def fatal(self, msg: dict[str, Any]) -> None:
        self.is_ready, self.busy = False, False
        self.fatal_exit = int(msg.get("exit", 3))
        self.failed_at = time.monotonic()
        self.sup.set_status(EngineState.FAILED, msg.get("layer", "base"), msg["reason"])

    def collected_exited(self, msg: dict[str, Any]) -> None:
        if int(msg["generation"]) != self.generation:
            return  # a layer we replaced on purpose
        self.drop_standby()
        reason = f"collected layer {status_words(msg['status'])}"
        self._lost(reason, "collected")

    def _base_exited(self) -> None:
        proc = self.base
        code = proc.poll() if proc is not None else None
        if proc is None:
            return
        self._forget_base()
        if self.sup._stopping:
            return
        if self.sup.status.state.value == "failed" and not self.busy:
            return  # it told us why with a fatal message
        reason = f"zygote process exited ({code})"
        tail = self.sup.log_tail("zygote.log")
        if tail and code not in (None, 0):
            reason += ": " + tail.splitlines()[-1]
        self._lost(reason, "base")

    def _lost(self, reason: str, what: str) -> None:
        self.is_ready = False
        self.sup.zygote_lost(reason)
        if self.sup.status.state.value == "failed" and not self.busy:
            return
        self._restart(what, reason)

    # -- freshness -----------------------------------------------------------------

    def stale(self) -> str | None:
        """'base', 'collected' or None, from the stat of everything the layers depend on.

        The stats are skipped when nothing happened in their folders since the
        last check that ran them (``fswatch``: an inotify queue, one read).
        """
        watch = self._watch
        if watch is not None and not watch.changed() and self._watch_verified:
            return None
        found = self._stale_by_stat()
        if watch is not None and found is None:
            self._watch_verified = True  # every change from now on is in the queue
        return found

    def _watch_fingerprints(self) -> None:
        """Watch the folders of what the layers now depend on; the next check still stats everything once."""
        self._unwatch()
        paths = [*self.fingerprint_base, *self.fingerprint_collected]
        self._watch = fswatch.DirWatch(fswatch.folders_of(paths, self.fingerprint_dirs))
        self._watch_verified = False

    def _unwatch(self) -> None:
        if self._watch is not None:
            self._watch.close()
        self._watch, self._watch_verified = None, False

    def _stale_by_stat(self) -> str | None:
        for path, seen in self.fingerprint_base.items():
            if stat_of(path) != seen:
                return "base"
        for path, seen in self.fingerprint_collected.items():
            if stat_of(path) != seen:
                return "collected"
        for path, (mtime, listing) in self.fingerprint_dirs.items():
            now = stat_of(path)
            if now == mtime:
                continue  # entries come and go only with a new mtime
            if dir_listing(path) != listing:
                return "collected"
            self.fingerprint_dirs[path] = (now, listing)  # only non-code entries changed
        return None

    def can_start(self) -> bool:
        """Warm and not rebuilding (freshness not checked)."""
        return self.is_ready and not self.busy and self.retry_at is None

    def ensure_fresh(self) -> bool:
        """True when a run may start now; else a rebuild is under way (or the engine failed)."""
        if self.busy or self.retry_at is not None:
            return False
        if not self.is_ready:
            return False
        return not self.refresh_if_stale()

    def retry_failed(self) -> None:
        """Start again from the base after a failure (the user may have fixed the cause)."""
        self.failures = 0
        self.failed_at = float("inf")
        self._kill_base()
        self.start()

    def refresh_if_stale(self) -> bool:
        """Rebuild what went stale; True if a rebuild started."""
        if not self.is_ready:
            return False
        what = self.stale()
        if what is None:
            return False
        self.failures = 0
        if what == "base" or self.spawn_mode or self.base_conn is None:
            self._kill_base()
            self.start()
        else:
            self._fork_collected()
        return True

    # -- work ----------------------------------------------------------------------

    def select(self, run: Run) -> None:
        assert self.collected_conn is not None
        req = run.request
        args = [self.to_rootdir(a) for a in req.args]
        wire.send(self.collected_conn.sock, "select", req=run.id, args=args, keyword=req.keyword, markexpr=req.markexpr)

    def to_rootdir(self, arg: str) -> str:
        path, sep, rest = arg.partition("::")
        if os.path.isabs(path):
            path = os.path.relpath(path, self.sup.rootdir)
        path = os.path.normpath(path).replace(os.sep, "/") if path else path
        return "" if path == "." and not sep else path + sep + rest

    def spawn(self, slot: WorkerSlot) -> None:
        if not self.spawn_mode:
            if not slot.debug and self._give_standby(slot):
                return
            assert self.collected_conn is not None
            wire.send(self.collected_conn.sock, "spawn", worker=slot.worker, nodeids=slot.nodeids, debug=slot.debug)
            return
        popen = self.sup.popen(
            ["batch", self.sup.spec(debug=slot.debug), str(slot.worker), json.dumps(slot.nodeids)],
            f"batch{slot.worker}.log",
        )
        pidfd = os.pidfd_open(popen.pid)
        self._batches[slot.worker] = (popen, pidfd)
        slot.pid = popen.pid

        def exited() -> None:
            self._batches.pop(slot.worker, None)
            self.sup.remove_proc(pidfd)
            status = popen.wait()
            wire_status = {"signal": -status, "name": _signame(-status)} if status < 0 else {"code": status}
            self.sup.on_worker_exited({"worker": slot.worker, "pid": popen.pid, "status": wire_status})

        self.sup.add_proc(pidfd, exited)

    # -- the standby ------------------------------------------------------------------

    def standby_pipe(self, pid: int, fd: int) -> None:
        """The collected layer forked a standby: its job pipe is ours now."""
        self.drop_standby()
        self.standby = (pid, fd)

    def drop_standby(self, pid: int | None = None) -> None:
        """Close the standby's job pipe if it was not used (it exits); ``pid``: only if it is that one."""
        if self.standby is None or (pid is not None and self.standby[0] != pid):
            return
        os.close(self.standby[1])
        self.standby = None
        self.sup.standby_ready.clear()

    def _give_standby(self, slot: WorkerSlot) -> bool:
        """Write the batch straight into the standby's pipe: no hop through the collected layer."""
        if self.standby is None:
            return False
        pid, fd = self.standby
        self.standby = None
        job = json.dumps({"worker": slot.worker, "nodeids": slot.nodeids, "debug": False}).encode() + b"\n"
        try:
            view = memoryview(job)
            while view:
                view = view[os.write(fd, view) :]
        except OSError:  # it died meanwhile: its exit comes from the collected layer; fork a worker instead
            return False
        finally:
            os.close(fd)
        slot.pid = pid
        return True

    def kill(self, workers: list[int]) -> None:
        if self.collected_conn is not None and not self.spawn_mode:
            try:
                wire.send(self.collected_conn.sock, "kill", workers=workers)
            except OSError:
                pass
        for worker in workers:
            entry = self._batches.get(worker)
            if entry is not None:
                entry[0].kill()

    def learn(self, learned: dict[str, Any]) -> None:
        """Pass on to the collected layer what a worker warmed that it has not been told yet."""
        modules = [m for m in learned.get("modules", []) if m not in self._warm_modules]
        patterns = [p for p in learned.get("patterns", []) if tuple(p) not in self._warm_patterns]
        if not (modules or patterns) or self.collected_conn is None or self.spawn_mode:
            return
        self._warm_modules.update(modules)
        self._warm_patterns.update(tuple(p) for p in patterns)
        wire.send(self.collected_conn.sock, "warm", modules=modules, patterns=patterns)
        if modules:
            self._write_preload(modules)  # and the next base imports them up front

    # -- preload cache ---------------------------------------------------------------

    def _read_preload(self) -> list[str]:
        path = self.sup.cache_file(PRELOAD_CACHE)
        if path is None:
            return []
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return []
        if data.get("python") != str(self.sup.config.python):
            return []
        return [str(n) for n in data.get("modules", [])]

    def _write_preload(self, modules: list[str]) -> None:
        path = self.sup.cache_file(PRELOAD_CACHE)
        if path is None or self.spawn_mode:
            return
        known = self._read_preload()
        merged = known + [m for m in modules if m not in set(known)]
        if merged == known and path.exists():
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"python": str(self.sup.config.python), "modules": merged}))
        except OSError:
            pass


def _signame(number: int) -> str:
    from .procutil import signal_name

    return signal_name(number)
