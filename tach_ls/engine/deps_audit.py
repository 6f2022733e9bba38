"""Per-test file and network dependencies, through Python's audit hooks (stdlib only).

`install(root)` adds one audit hook (hooks cannot be removed, so it is
installed once, in the zygote, and does nothing until a test starts).
`start()` / `stop()` bracket one test in a worker: while active, every
"open" of a path inside the workspace (resolved against the current
directory at the time of the call, so a relative path after `chdir` still
counts) and every "socket.connect" address is recorded. Unlike strace this
costs a Python call per event, and nests safely when the code under test
traces processes itself.

A test that starts another process (subprocess, `os.system`, exec, spawn,
fork) runs code no per-test coverage sees: it is flagged `spawned`, and
impact analysis then re-runs it whenever anything in the workspace changed.
"""

from __future__ import annotations

import os
import sys
from typing import Any

_root = ""
_ignored: tuple[str, ...] = ()
_active = False
_files: set[str] = set()
_endpoints: set[str] = set()
_spawned = False
_installed = False
_SPAWNS = ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "pty.spawn")


def install(root: str, ignore: tuple[str, ...] = (".git", ".tach-ls", ".venv", "venv", "__pycache__", ".pytest_cache")) -> None:
    global _root, _ignored, _installed
    _root = os.path.realpath(root)
    _ignored = tuple(os.path.join(_root, name) + os.sep for name in ignore)
    if not _installed:
        sys.addaudithook(_hook)
        _installed = True


def _hook(event: str, args: tuple[Any, ...]) -> None:
    global _spawned
    if not _active:
        return
    if event in _SPAWNS:
        _spawned = True
    elif event == "open":
        path = args[0]
        if isinstance(path, int) or path is None:
            return
        try:
            text = os.fsdecode(path)
            if not os.path.isabs(text):
                text = os.path.join(os.getcwd(), text)
            text = os.path.normpath(text)
        except (TypeError, ValueError, OSError):
            return
        if text.startswith(_root + os.sep) and not text.startswith(_ignored):
            _files.add(text[len(_root) + 1 :])
    elif event == "socket.connect":
        address = args[1] if len(args) > 1 else None
        if isinstance(address, tuple) and len(address) >= 2:
            _endpoints.add(f"{address[0]}:{address[1]}")
        elif isinstance(address, (str, bytes)):
            _endpoints.add(f"unix:{os.fsdecode(address)}")


def start() -> None:
    global _active, _spawned
    _files.clear()
    _endpoints.clear()
    _spawned = False
    _active = True


def stop() -> tuple[list[str], list[str], bool]:
    """Stop recording; (workspace files opened, endpoints connected to, whether it started a process)."""
    global _active
    _active = False
    return sorted(_files), sorted(_endpoints), _spawned
