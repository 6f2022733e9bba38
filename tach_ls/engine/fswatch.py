"""A cheap "has anything changed?" before the freshness check's stats: Linux inotify, by ctypes.

Server side. Before every run the supervisor makes sure no file the layers
depend on changed (``LayerSet.stale``): a ``stat`` of every workspace module
the collected layer imported, every config and lock file, every folder
collection walked. On Flask that is about 70 calls and 0.25 ms, paid on the
supervisor's CPU right after a click's job is written, which is the CPU the
kernel tends to wake the worker on. ``DirWatch`` watches the folders those
files live in; when nothing happened in them since the last look (one
non-blocking ``read``), the stats are skipped.

Why this cannot miss a change: the kernel queues an inotify event inside the
system call that changes the file (a write, a rename into place, a
``touch``), before that call returns. A change the user made before clicking
is therefore in the queue before the supervisor reads it. Anything unusual
(inotify unavailable, a folder that cannot be watched, a full queue) makes
``changed`` answer True, and the stats run as before.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Iterable

_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_MASK = (
    0x00000002  # IN_MODIFY
    | 0x00000004  # IN_ATTRIB
    | 0x00000008  # IN_CLOSE_WRITE
    | 0x00000040  # IN_MOVED_FROM
    | 0x00000080  # IN_MOVED_TO
    | 0x00000100  # IN_CREATE
    | 0x00000200  # IN_DELETE
    | 0x00000400  # IN_DELETE_SELF
    | 0x00000800  # IN_MOVE_SELF
)

_libc: ctypes.CDLL | None = None


def _lib() -> ctypes.CDLL | None:
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
            _libc.inotify_init1.argtypes = [ctypes.c_int]
            _libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        except (OSError, AttributeError):
            return None
    return _libc


class DirWatch:
    """Watches folders for any change to what they hold; ``changed`` says whether there was one since the last call."""

    def __init__(self, folders: Iterable[str]) -> None:
        self.fd = -1
        lib = _lib()
        if lib is None:
            return
        fd = lib.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            return
        for folder in sorted(set(folders)):
            if lib.inotify_add_watch(fd, os.fsencode(folder), _MASK) < 0:
                os.close(fd)  # a folder we cannot watch (gone, a limit reached): the stats decide, every time
                return
        self.fd = fd

    @property
    def active(self) -> bool:
        return self.fd >= 0

    def changed(self) -> bool:
        """True if anything happened in a watched folder since the last call (or if we cannot know)."""
        if self.fd < 0:
            return True
        seen = False
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return seen
            except OSError:
                self.close()
                return True
            if not data:
                return True
            seen = True

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def folders_of(paths: Iterable[str], folders: Iterable[str] = ()) -> set[str]:
    """The folders to watch for ``paths`` (files: their parent; a folder: itself) and ``folders``."""
    out = set(folders)
    for path in paths:
        out.add(path if os.path.isdir(path) else os.path.dirname(path) or ".")
    return out
