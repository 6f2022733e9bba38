"""Process plumbing shared by the zygote layers and the workers (stdlib only).

Owns: dying with the parent (``PR_SET_PDEATHSIG`` through ctypes, then the
``getppid`` check that closes the race), counting native threads (from
``/proc/self/task``, which sees OpenBLAS pools that ``threading`` does not),
exit statuses as plain dicts for the wire, and the workspace/venv test for a
file path.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import sysconfig
from typing import Any

_PR_SET_PDEATHSIG = 1

THREAD_WATCH: dict[str, Any] = {"on": True, "culprit": None, "last": None}
"""Set by the zygote's import audit hook: the module after which a second native thread appeared."""


def die_with_parent(expected_parent: int, sig: int = signal.SIGKILL) -> None:
    """Ask the kernel to send ``sig`` when our parent dies; exit now if it already has.

    The signal fires when the parent *thread* that forked us exits, so the
    supervisor must spawn the zygote from a thread that lives as long as it.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: rely on the getppid check only
        pass
    if os.getppid() != expected_parent:
        os._exit(70)


def native_thread_count() -> int:
    """Threads of this process as the kernel sees them (1 when single-threaded)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        import threading

        return threading.active_count()


def exit_status(wait_status: int) -> dict[str, Any]:
    """``{"code": n}`` or ``{"signal": n, "name": "SIGSEGV"}`` from a waitpid status."""
    if os.WIFSIGNALED(wait_status):
        number = os.WTERMSIG(wait_status)
        return {"signal": number, "name": signal_name(number)}
    return {"code": os.waitstatus_to_exitcode(wait_status)}


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def environment_prefixes() -> tuple[str, ...]:
    """Folders whose files belong to the interpreter or its environment, never the workspace."""
    found = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    for key in ("purelib", "platlib", "stdlib", "platstdlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            found.add(path)
    for path in sys.path:
        if path.endswith(("site-packages", "dist-packages")):
            found.add(path)
    return tuple(sorted(os.path.realpath(p).rstrip(os.sep) + os.sep for p in found if p))


def in_workspace(filename: str, root: str, prefixes: tuple[str, ...]) -> bool:
    """True for a source file of the workspace (under ``root``, not in a venv under it)."""
    if not filename or filename.startswith("<"):
        return False
    path = os.path.realpath(filename)
    if not path.startswith(root.rstrip(os.sep) + os.sep):
        return False
    return not any(path.startswith(prefix) for prefix in prefixes)


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    """Signal a whole process group, ignoring one that is already gone."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


OUTPUT_LIMIT = 48_000
"""Characters of stdout (and of stderr) kept per test."""


def read_from(path: str, offset: int, limit: int = OUTPUT_LIMIT) -> str:
    """The text of ``path`` from ``offset``, capped with a marker when cut."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read(limit + 1)
            rest = os.fstat(handle.fileno()).st_size - offset - limit
    except OSError:
        return ""
    text = data[:limit].decode("utf-8", "replace")
    if rest > 0:
        text += f"\n[... tach-ls: output cut, {rest} more bytes not shown]\n"
    return text


def stat_of(path: str) -> list[int] | None:
    """``[mtime_ns, size]`` of a path, or None when it does not exist: a file's fingerprint."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_mtime_ns, st.st_size]


def arg_matches(nodeid: str, arg: str) -> bool:
    """pytest's selection by argument: a folder, a file, a node id or its parametrized group."""
    if arg in ("", ".") or nodeid == arg:
        return True
    if "::" in arg:
        return nodeid.startswith((arg + "::", arg + "["))
    path = nodeid.split("::", 1)[0]
    arg = arg.rstrip("/")
    return path == arg or path.startswith(arg + "/")


def dir_listing(path: str) -> list[str] | None:
    """The entries of a folder that can change what pytest collects: ``.py`` files and visible subfolders.

    A folder's mtime would also move for editor swap files, logs and caches;
    its listing of these names moves only when a test module or package may
    have come or gone.
    """
    try:
        entries = list(os.scandir(path))
    except OSError:
        return None
    names = []
    for entry in entries:
        name = entry.name
        if name.startswith(".") or name == "__pycache__":
            continue
        if name.endswith(".py") or entry.is_dir(follow_symlinks=False):
            names.append(name)
    return sorted(names)


_MADV_POPULATE_WRITE = 23  # Linux 5.14+


def prefault_private_memory(min_density: float = 0.5) -> int:
    """Break copy-on-write now for the memory this process shares with the zygote; pages touched.

    A child forked from a large zygote pays a page fault for every page its
    first test writes (refcounts are writes), a few microseconds each. The
    standby child calls this while it waits, so a click does not pay them.
    Only private writable mappings that are mostly resident already are
    populated, so reserved-but-unused address space is not turned into memory.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        madvise = libc.madvise
        madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        with open("/proc/self/smaps") as handle:
            lines = handle.read().splitlines()
    except (OSError, AttributeError):
        return 0
    ranges: list[tuple[int, int]] = []
    current: tuple[int, int] | None = None
    for line in lines:
        head = line.split(None, 5)
        if "-" in head[0] and len(head) >= 5:
            start, end = (int(x, 16) for x in head[0].split("-"))
            current = (start, end) if head[1] == "rw-p" else None
        elif current is not None and head[0] == "Rss:":
            size = current[1] - current[0]
            if int(head[1]) * 1024 >= size * min_density:
                ranges.append(current)
            current = None
    pages = 0
    for start, end in ranges:
        if madvise(start, end - start, _MADV_POPULATE_WRITE) == 0:
            pages += (end - start) // 4096
    return pages


_yield_holding_gil: Any = None


def yield_cpu() -> None:
    """Let a process just woken on this CPU run now, without letting go of the GIL.

    ``os.sched_yield`` releases the GIL around the call: in a process with
    other Python threads (the language server) one of them takes it for up to
    the switch interval (5 ms), which cost more than the yield saves.
    """
    global _yield_holding_gil
    if _yield_holding_gil is None:
        try:
            _yield_holding_gil = ctypes.PyDLL(None).sched_yield  # PyDLL: the GIL stays held
        except (OSError, AttributeError):
            _yield_holding_gil = os.sched_yield
    _yield_holding_gil()

