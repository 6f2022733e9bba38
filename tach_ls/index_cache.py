"""The persistent index cache: per file, the parsed result keyed by stat and content hash.

Stored with `marshal` (plain tuples, dicts and strings) in the workspace cache
folder, written atomically (temp file + rename) so a crash mid-write leaves
the previous cache, and a cache from another version or config is ignored.
An entry is reused when the file's size and mtime match, or, failing that,
when its content hash does; and only while the files it depended on
(conftests, modules its base classes came from) still have their recorded
size and mtime.
"""

from __future__ import annotations

import hashlib
import marshal
import os
from pathlib import Path
from typing import Any

CACHE_VERSION = 3
CACHE_FILE = "index.marshal"

Signature = tuple[int, int]  # (size, mtime_ns)


def signature(path: Path) -> Signature | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)


def content_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


class IndexCache:
    """Entries: relpath -> (signature, hash, deps {relpath: signature}, payload)."""

    def __init__(self, folder: Path | None, config_key: str) -> None:
        self.path = folder / CACHE_FILE if folder is not None else None
        self.config_key = config_key
        self.entries: dict[str, tuple[Signature, str, dict[str, Signature | None], Any]] = {}
        self.dirty = False

    def load(self) -> None:
        if self.path is None:
            return
        try:
            with open(self.path, "rb") as fh:
                data = marshal.load(fh)
        except (OSError, EOFError, ValueError, TypeError):
            return
        if isinstance(data, dict) and data.get("version") == CACHE_VERSION and data.get("config") == self.config_key:
            entries = data.get("entries")
            if isinstance(entries, dict):
                self.entries = entries

    def lookup(self, rel: str, sig: Signature | None, read: Any, dep_sig: Any) -> Any:
        """The cached payload for `rel`, or None. `read()` gives the bytes if the hash must be checked."""
        entry = self.entries.get(rel)
        if entry is None or sig is None:
            return None
        old_sig, old_hash, deps, payload = entry
        if any(dep_sig(dep) != dsig for dep, dsig in deps.items()):
            return None
        if tuple(old_sig) == sig:
            return payload
        data = read()
        if data is not None and content_hash(data) == old_hash:
            self.entries[rel] = (sig, old_hash, deps, payload)
            self.dirty = True
            return payload
        return None

    def store(self, rel: str, sig: Signature | None, data: bytes, deps: dict[str, Signature | None], payload: Any) -> None:
        if sig is None:
            return
        self.entries[rel] = (sig, content_hash(data), deps, payload)
        self.dirty = True

    def prune(self, keep: set[str]) -> None:
        for rel in list(self.entries):
            if rel not in keep:
                del self.entries[rel]
                self.dirty = True

    def save(self) -> None:
        if self.path is None or not self.dirty:
            return
        tmp = self.path.with_name(f"{CACHE_FILE}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as fh:
                marshal.dump({"version": CACHE_VERSION, "config": self.config_key, "entries": self.entries}, fh)
            os.replace(tmp, self.path)
            self.dirty = False
        except (OSError, ValueError):
            try:
                tmp.unlink()
            except OSError:
                pass
