"""Worker isolation: a private /tmp, project, network and /proc for every worker (stdlib only).

Zygote side. Parallel tests collide on shared state (``/tmp/cache.db``, port
8080, files written into the checkout); here each worker gets its own world,
set up by the kernel and torn down by the kernel when the worker's last
process dies, so there is nothing to clean up and nothing to leak, even
after SIGKILL.

Features (``FEATURES``), applied by ``enter`` in the worker right after the
fork, once its output files are open:

- ``tmp``: a mount namespace with every mount made private first
  (``MS_REC|MS_PRIVATE``, so nothing propagates to the host), then a fresh
  tmpfs on ``/tmp`` and ``/dev/shm``. What the engine itself needs under
  ``/tmp`` stays: the supervisor's run folder (bind-mounted), environment
  folders (read-only), and pytest's basetemp (recreated empty, see
  ``restore_basetemp``), so ``tmp_path`` works and is private.
- ``project``: an overlay over the project root whose lower layer is the
  checkout (reached through a descriptor opened before anything is mounted,
  which also works when the project itself lives under ``/tmp``) and whose
  upper and work directories live on a tmpfs of their own, mounted on the
  project path and hidden under the overlay. The worker re-enters its
  working directory afterwards, so relative paths see the overlay. Tests may
  create, change and delete project files; the checkout never sees it.
  Optionally the upper layer is read after each test to report what it
  wrote (``show_writes``).
- ``net``: a network namespace with ``lo`` up (``SIOCSIFFLAGS``, no ``ip``
  binary), so every worker can bind 127.0.0.1:8080 at once. An audit hook
  (``nsutil.install_net_guard``) turns a connection to anything but
  loopback, or a name lookup outside ``/etc/hosts``, into an immediate error
  that says why.
- ``proc``: the ``/proc`` guard. ``/proc/<parent>/cwd`` (or ``root``, or
  ``fd/N``) of the zygote would lead a test straight back to the host's
  project, around the overlay. A pid namespace would hide the other
  processes, but only for *children* of the process that unshares it: the
  worker would have to fork once more (a second copy-on-write fork of the
  whole warm interpreter, about 5 ms on Flask) or be pid 1 of a namespace
  forked by the zygote, and pid 1 ignores the signals it has no handler
  for (``os.kill(os.getpid(), SIGKILL)`` would do nothing), reports
  ``getpid() == 1`` everywhere, and leaves zombies unless it reaps. The
  equivalent guard costs microseconds instead: a Landlock domain
  (``nsutil.landlock_guard``). A process in a Landlock domain gets no
  ptrace-mode access to processes outside it, and that is the check behind
  every ``/proc/<pid>/cwd|root|fd|environ|mem``; it also loses mount and
  umount, so a test running as root cannot take the overlay away.
- as an unprivileged user, a user namespace comes first (our uid and gid
  mapped to themselves) and gives the capabilities for the rest.

Scope: one world per worker. A click runs each test in its own worker, so
each test gets a fresh world; a full run gives one world to each batch (a
module's tests, with their module and session fixtures), whose tests run one
after the other as under plain pytest and see each other's writes as they
would there. Resetting the world between the tests of a batch would take
away what a module fixture left in /tmp or the project for the module's
tests: isolation must never fail a suite that passes under plain pytest.

Cost, measured by ``bench/isolation.py`` (2-core VM, Linux 6.18, Flask):
``enter`` takes about 1.5 ms in the child, mostly the network namespace
(0.5 ms) and bringing ``lo`` up (0.1 ms, up to 1 ms while the kernel tears
down earlier workers' namespaces under the same lock), then the mount
namespace (0.1-0.2 ms), the overlay (0.1 ms), tmpfs mounts and Landlock
(tens of microseconds each). The standby child enters before its job
arrives, so a click does not wait for it; a full run pays it once per batch.

Not covered: a ``TMPDIR`` outside /tmp and the project; files the zygote
opened before the fork (their descriptors still reach the host file); a
process that leaves the worker's process group (``setsid``) outlives the
worker and keeps its namespaces alive, as it would outlive it without
isolation. Other processes stay visible in ``/proc`` and can still be
signalled (a test may kill its zygote on purpose). Tests that need the
network or mount filesystems need ``--isolation off``.

Levels: ``off`` does nothing. ``auto`` probes each feature once per session
(``start_session``, in the base layer: a forked child really tries every
step, over the real project), applies what works and says once what is and
is not isolated. ``strict`` refuses to start, naming the missing feature and
how to get it. ``TACH_LS_ISOLATION_REFUSE=net,proc`` (comma-separated
features, or ``user``) makes the probe fail those steps, for tests of the
fallbacks.
"""

from __future__ import annotations

import errno
import json
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from . import nsutil

FEATURES = ("tmp", "project", "net", "proc")
LEVELS = ("off", "auto", "strict")
REFUSE_ENV = "TACH_LS_ISOLATION_REFUSE"

WHAT = {
    "tmp": "a private /tmp and /dev/shm",
    "project": "an overlay over the project (writes discarded)",
    "net": "a private network (loopback only)",
    "proc": "the /proc guard (no way into other processes' cwd, root or fds)",
}
NAMES = {"tmp": "/tmp and /dev/shm", "project": "the project directory", "net": "the network", "proc": "/proc"}
HOW_TO_GET = {
    "user": "allow unprivileged user namespaces (sysctl user.max_user_namespaces=15000; Debian before 11: "
    "kernel.unprivileged_userns_clone=1; Ubuntu 23.10+: kernel.apparmor_restrict_unprivileged_userns=0; in a "
    "container, a seccomp profile that allows unshare), or run tach-ls as root",
    "tmp": "mount namespaces need CAP_SYS_ADMIN or a user namespace (in Docker: --cap-add SYS_ADMIN "
    "--security-opt seccomp=unconfined --security-opt apparmor=unconfined)",
    "project": "overlayfs (modprobe overlay; inside a user namespace it needs Linux 5.11+) over a project on a "
    "filesystem overlayfs accepts as a lower layer",
    "net": "network namespaces (CONFIG_NET_NS; sysctl user.max_net_namespaces > 0; in Docker: --cap-add SYS_ADMIN)",
    "proc": "Landlock ABI 2+ (Linux 5.19+ with landlock in CONFIG_LSM or the lsm= boot parameter)",
}


class IsolationError(RuntimeError):
    """A feature the probe found working failed in a worker (strict), or strict found one missing."""


@dataclass
class Plan:
    """What every worker of this session applies; decided once by ``probe``."""

    level: str = "off"
    root: str = ""
    features: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    userns: bool = False
    overlay_options: str = ""
    keep: list[tuple[str, bool]] = field(default_factory=list)
    """Paths under /tmp the worker needs from the host, and whether they stay writable."""
    show_writes: bool = False
    local_names: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """What is and is not isolated, in one paragraph."""
        if self.level == "off":
            return "isolation off: workers share /tmp, the project, the network and /proc with the host"
        done = ", ".join(WHAT[f] for f in self.features) or "nothing"
        text = f"isolation {self.level}: each worker gets {done}"
        missing = [f for f in FEATURES if f in self.refused]
        if missing:
            text += "; NOT isolated: " + "; ".join(
                f"{NAMES[f]} ({self.refused[f]}; to get it: {HOW_TO_GET[_cause(self.refused[f], f)]})" for f in missing
            )
            text += ". Tests that share those with each other may collide when they run in parallel."
        return text


def _cause(reason: str, feature: str) -> str:
    return "user" if reason.startswith("user namespace") else feature


_plan = Plan()
_world: _World | None = None


@dataclass
class _World:
    """A worker's isolation after ``enter``: what applied, and the handles to report project writes."""

    applied: list[str]
    upper_fd: int = -1
    lower_fd: int = -1
    seen: nsutil.Seen = field(default_factory=dict)


# -- session: decide once ------------------------------------------------------------------------------------------


def start_session(spec: dict[str, Any], send: Callable[..., None], *, announce: bool = True) -> str:
    """Probe once for this session (zygote side) and say what is isolated; '' when off.

    ``strict`` with a missing feature sends ``fatal`` and exits 4 (a usage
    error: the system cannot give what was asked for). ``auto`` with a
    missing feature sends one ``warning``.
    """
    global _plan
    level = str(spec.get("isolation") or "off")
    if level not in LEVELS:
        send("fatal", layer="base", exit=4, reason=f"unknown isolation level {level!r} (expected off, auto or strict)")
        os._exit(4)
    if level == "off":
        _plan = Plan()
        return ""
    refuse = {f.strip() for f in os.environ.get(REFUSE_ENV, "").split(",") if f.strip()}
    _plan = probe(level, str(spec["root"]), keep=_keep_paths(spec), show_writes=bool(spec.get("show_writes")),
                  refuse=refuse)  # fmt: skip
    if level == "strict" and _plan.refused:
        missing = [f for f in FEATURES if f in _plan.refused]
        reason = "isolation strict: cannot isolate " + "; ".join(
            f"{NAMES[f]}: {_plan.refused[f]} (to get it: {HOW_TO_GET[_cause(_plan.refused[f], f)]})" for f in missing
        ) + ". Use --isolation auto to run with what this system allows."
        send("fatal", layer="base", exit=4, reason=reason)
        os._exit(4)
    if announce and _plan.refused:
        send("warning", text=_plan.describe())
    return f"isolation {level}: " + (", ".join(_plan.features) or "none")


def plan() -> Plan:
    return _plan


def _keep_paths(spec: dict[str, Any]) -> list[tuple[str, bool]]:
    keep: list[tuple[str, bool]] = []
    if spec.get("rundir"):
        keep.append((os.path.realpath(spec["rundir"]), True))
    for path in {sys.prefix, sys.exec_prefix, sys.base_prefix, *sys.path}:
        if path and os.path.isdir(path):
            keep.append((os.path.realpath(path), False))
    return keep


def probe(level: str, root: str, *, keep: Iterable[tuple[str, bool]] = (), show_writes: bool = False,
          refuse: Iterable[str] = ()) -> Plan:  # fmt: skip
    """Try every feature in a forked child, over the real project; the plan of what works."""
    root = os.path.realpath(root)
    draft = Plan(level=level, root=root, keep=_only_hidden(keep, root), show_writes=show_writes,
                 local_names=nsutil.local_names(), userns=os.geteuid() != 0)  # fmt: skip
    found = _probe_child(draft, set(refuse))
    if draft.userns is False and not found["applied"] and found["refused"]:
        # Root without CAP_SYS_ADMIN (a container): a user namespace may still give it all.
        draft.userns = True
        second = _probe_child(draft, set(refuse))
        if second["applied"]:
            found = second
        else:
            draft.userns = False
    draft.features = [f for f in FEATURES if f in found["applied"]]
    draft.refused = {f: found["refused"][f] for f in FEATURES if f in found["refused"]}
    draft.overlay_options = found.get("overlay_options", "")
    return draft


def _only_hidden(keep: Iterable[tuple[str, bool]], root: str) -> list[tuple[str, bool]]:
    """Of ``keep``, the paths a fresh /tmp would hide and the overlay would not show (outermost first)."""
    chosen: dict[str, bool] = {}
    for path, writable in keep:
        if not _under(path, "/tmp") or _under(path, root):
            continue
        chosen[path] = chosen.get(path, False) or writable
    ordered = sorted(chosen, key=lambda p: (p.count("/"), p))
    outer = [p for p in ordered if not any(o != p and _under(p, o) and chosen[o] >= chosen[p] for o in ordered)]
    return [(p, chosen[p]) for p in outer]


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _probe_child(draft: Plan, refuse: set[str]) -> dict[str, Any]:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(read_end)
            found = _build(draft, list(FEATURES), probing=True, refuse=refuse)
            payload = {"applied": found.applied, "refused": found.refused, "overlay_options": found.overlay_options}
            os.write(write_end, json.dumps(payload).encode())
        except BaseException:  # noqa: BLE001 (the parent reads a crash as every feature refused)
            code = 3
        finally:
            os._exit(code)
    os.close(write_end)
    chunks = []
    while True:
        data = os.read(read_end, 65536)
        if not data:
            break
        chunks.append(data)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    try:
        return dict(json.loads(b"".join(chunks)))
    except ValueError:
        reason = f"the isolation probe died (wait status {status})"
        return {"applied": [], "refused": dict.fromkeys(FEATURES, reason)}


# -- worker: enter the world ---------------------------------------------------------------------------------------


def enter(plan_: Plan | None = None, skip: Iterable[str] = ()) -> list[str]:
    """Isolate this freshly forked worker as the session's plan says; the features applied.

    Strict raises ``IsolationError`` when a feature fails here although the
    probe found it working; auto goes on without it (the result says so).
    ``skip`` leaves features out for this worker (a debug worker must keep
    the host's network, or the editor's debugger cannot reach its port).
    """
    global _world
    current = plan_ or _plan
    wanted = [f for f in current.features if f not in set(skip)]
    if not wanted:
        _world = _World(applied=[])
        return []
    built = _build(current, wanted, probing=False, refuse=set())
    if built.refused and current.level == "strict":
        raise IsolationError("isolation strict: " + "; ".join(f"{NAMES[f]}: {r}" for f, r in built.refused.items()))
    _world = _World(applied=built.applied, upper_fd=built.upper_fd, lower_fd=built.lower_fd)
    if "net" in built.applied:
        nsutil.install_net_guard(current.local_names)
    return list(built.applied)


def applied() -> list[str]:
    """The features this worker runs under (empty before ``enter`` or when off)."""
    return list(_world.applied) if _world is not None else []


@dataclass
class _Built:
    applied: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    overlay_options: str = ""
    upper_fd: int = -1
    lower_fd: int = -1


def _build(plan_: Plan, wanted: list[str], *, probing: bool, refuse: set[str]) -> _Built:
    """Apply ``wanted`` features in order, recording each refusal; the probe and the workers share this."""
    out = _Built(overlay_options=plan_.overlay_options)

    def forced(name: str) -> None:
        if name in refuse:
            raise OSError(errno.EPERM, f"refused by {REFUSE_ENV} (a test of the fallbacks)")

    def refused(names: Iterable[str], why: str) -> None:
        for name in names:
            if name in wanted and name not in out.refused:
                out.refused[name] = why

    if plan_.userns:
        try:
            forced("user")
            uid, gid = os.geteuid(), os.getegid()
            nsutil.unshare(nsutil.CLONE_NEWUSER, "CLONE_NEWUSER")
            nsutil.write_id_maps(uid, gid)
        except OSError as exc:
            refused(wanted, f"user namespace refused: {exc.strerror}")
            return out
    mounts: list[str] = [f for f in ("tmp", "project") if f in wanted]
    if mounts:
        try:
            nsutil.unshare(nsutil.CLONE_NEWNS, "CLONE_NEWNS")
            nsutil.mount(None, "/", None, nsutil.MS_REC | nsutil.MS_PRIVATE)  # before any mount: nothing propagates
        except OSError as exc:
            refused(mounts, exc.strerror or str(exc))
            mounts = []
    if mounts:
        _build_mounts(plan_, mounts, out, forced, refused, probing)
    if "net" in wanted:
        try:
            forced("net")
            nsutil.unshare(nsutil.CLONE_NEWNET, "CLONE_NEWNET")
            nsutil.loopback_up()
            out.applied.append("net")
        except OSError as exc:
            refused(["net"], exc.strerror or str(exc))
    if "proc" in wanted:
        try:
            forced("proc")
            nsutil.landlock_guard()  # last: it forbids mounting
            out.applied.append("proc")
        except OSError as exc:
            refused(["proc"], exc.strerror or str(exc))
    out.applied = [f for f in FEATURES if f in out.applied]
    return out


def _build_mounts(plan_: Plan, mounts: list[str], out: _Built, forced: Callable[[str], None],
                  refused: Callable[[Iterable[str], str], None], probing: bool) -> None:  # fmt: skip
    root = plan_.root
    cwd = _getcwd()
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY)  # the checkout, reachable after /tmp is replaced
    keep_fds = [(path, writable, os.open(path, os.O_PATH)) for path, writable in plan_.keep if os.path.exists(path)]
    root_hidden = False
    try:
        if "tmp" in mounts:
            try:
                forced("tmp")
                _fresh_tmpfs("/dev/shm")
                _fresh_tmpfs("/tmp")
                out.applied.append("tmp")
                root_hidden = _under(root, "/tmp")
                for path, writable, fd in keep_fds:
                    _bind(fd, path, writable)
            except OSError as exc:
                refused(["tmp"], exc.strerror or str(exc))
        if "project" in mounts:
            try:
                forced("project")
                if root_hidden:
                    os.makedirs(root, exist_ok=True)
                out.overlay_options, out.upper_fd = _overlay(root, root_fd, plan_, probing)
                out.applied.append("project")
                if out.upper_fd >= 0:
                    out.lower_fd = os.dup(root_fd)
            except OSError as exc:
                refused(["project"], exc.strerror or str(exc))
                if root_hidden:
                    _bind(root_fd, root, True)  # the checkout itself, as without the overlay
        if cwd is not None:
            try:
                os.chdir(cwd)  # a path again: now it resolves through the new mounts
            except OSError:
                pass
    finally:
        os.close(root_fd)
        for _, _, fd in keep_fds:
            os.close(fd)


def _getcwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:
        return None


def _fresh_tmpfs(path: str) -> None:
    if os.path.isdir(path):
        nsutil.mount("tmpfs", path, "tmpfs", nsutil.MS_NOSUID | nsutil.MS_NODEV, "mode=1777")


def _bind(fd: int, path: str, writable: bool) -> None:
    os.makedirs(path, exist_ok=True)
    nsutil.mount(f"/proc/self/fd/{fd}", path, None, nsutil.MS_BIND)
    if not writable:
        nsutil.mount(None, path, None, nsutil.MS_REMOUNT | nsutil.MS_BIND | nsutil.MS_RDONLY)


def _overlay(root: str, root_fd: int, plan_: Plan, probing: bool) -> tuple[str, int]:
    """A scratch tmpfs on the project path for the upper layer, the overlay on top: (options used, upper fd or -1)."""
    nsutil.mount("tach-ls-upper", root, "tmpfs", nsutil.MS_NOSUID | nsutil.MS_NODEV, "mode=700")
    reader = -1
    try:
        os.mkdir(os.path.join(root, "upper"))
        os.mkdir(os.path.join(root, "work"))
        upper = os.open(os.path.join(root, "upper"), os.O_PATH | os.O_DIRECTORY)
        work = os.open(os.path.join(root, "work"), os.O_PATH | os.O_DIRECTORY)
        try:
            if plan_.show_writes:
                reader = os.open(os.path.join(root, "upper"), os.O_RDONLY | os.O_DIRECTORY)
            # Renaming a directory of the checkout needs redirect_dir (trusted xattrs: root only); userxattr
            # keeps opaque directories working in a user namespace. Plain options where the kernel says no.
            if probing:
                choices = ["userxattr", ""] if plan_.userns else ["redirect_dir=on", ""]
            else:
                choices = [plan_.overlay_options]
            fds = (f"/proc/self/fd/{root_fd}", f"/proc/self/fd/{upper}", f"/proc/self/fd/{work}")
            failure = OSError(errno.EINVAL, "no overlay options to try")
            for extra in choices:
                try:
                    nsutil.mount("tach-ls", root, "overlay", 0, nsutil.overlay_options(*fds, extra))
                    return extra, reader
                except OSError as exc:
                    failure = exc
            raise failure
        finally:
            os.close(upper)
            os.close(work)
    except OSError:
        if reader >= 0:
            os.close(reader)
        nsutil.umount(root)  # the empty scratch must not stand in for the project
        raise


# -- in the worker, per test ---------------------------------------------------------------------------------------


def restore_basetemp(config: Any) -> None:
    """Recreate pytest's basetemp (computed by the zygote on the host's /tmp) in the worker's fresh /tmp."""
    if "tmp" not in applied():
        return
    factory = getattr(config, "_tmp_path_factory", None)
    base = getattr(factory, "_basetemp", None)
    if base is None or os.path.isdir(base):
        return
    missing = []
    path = os.path.abspath(str(base))
    while path != "/" and not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    for folder in reversed(missing):
        os.mkdir(folder, 0o700)


def result_fields() -> dict[str, Any]:
    """The fields this module adds to a result: the isolation, and the project writes since the last call."""
    fields: dict[str, Any] = {"isolation": applied()}
    if _world is not None and _world.upper_fd >= 0:
        fields["project_writes"], _world.seen = nsutil.upper_changes(_world.upper_fd, _world.lower_fd, _world.seen)
    return fields
