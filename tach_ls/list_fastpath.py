"""The warm path of `tach-ls list`: print the last output if nothing it depended on changed.

A listing depends on the config files pytest would consult, every folder
walked (a folder's mtime changes when an entry is added, removed or renamed),
every file indexed and every file those depended on (conftests, modules
base classes or parameter values came from). After a full run the command
records all of them with their stat signature next to its output; the next
run with the same arguments, environment and interpreter re-stats them and,
if every signature matches, prints the stored output without importing the
indexer at all. Any difference, or any doubt, falls back to the full path.

Imports only `os`, `sys`, `marshal` and `zlib`, so the warm path costs little
more than the interpreter's start.
"""

from __future__ import annotations

import marshal
import os
import sys
import zlib
from collections.abc import Iterable, Sequence

FORMAT = 2
Sig = tuple[int, int] | int | None  # (size, mtime_ns) for a file, mtime_ns for a folder, None: absent


def _folder() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "tach-ls", "list")


def _key(argv: Sequence[str]) -> str:
    from tach_ls import __version__

    return "\x00".join(
        [
            str(FORMAT),
            __version__,
            sys.version,
            os.getcwd(),
            os.environ.get("PYTEST_ADDOPTS", ""),
            os.environ.get("TACH_LS_CACHE_DIR", ""),
            *argv,
        ]
    )


def _path_for(key: str) -> str:
    return os.path.join(_folder(), f"{zlib.crc32(key.encode()):08x}.marshal")


def signature(path: str, is_dir: bool) -> Sig:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns if is_dir else (st.st_size, st.st_mtime_ns)


def try_cached(argv: Sequence[str]) -> int | None:
    """Print the stored output and return its exit code, or None if it may be stale."""
    if "--no-cache" in argv:
        return None
    key = _key(argv)
    try:
        with open(_path_for(key), "rb") as fh:
            data = marshal.load(fh)
        if data["key"] != key:
            return None
        for path, is_dir, sig in data["deps"]:
            if signature(path, is_dir) != sig:
                return None
        out: bytes = data["out"]
        err: bytes = data["err"]
        rc: int = data["rc"]
    except (OSError, EOFError, ValueError, TypeError, KeyError):
        return None
    sys.stdout.buffer.write(out)
    sys.stdout.flush()
    if err:
        sys.stderr.buffer.write(err)
    return rc


def store(argv: Sequence[str], deps: Iterable[tuple[str, bool, Sig]], out: bytes, err: bytes, rc: int) -> None:
    """Record a full run's output and everything it depended on (best effort)."""
    if "--no-cache" in argv:
        return
    key = _key(argv)
    path = _path_for(key)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(tmp, "wb") as fh:
            marshal.dump({"key": key, "deps": list(deps), "out": out, "err": err, "rc": rc}, fh)
        os.replace(tmp, path)
    except (OSError, ValueError):
        try:
            os.unlink(tmp)
        except OSError:
            pass
