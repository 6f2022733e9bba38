"""The per-workspace cache folder (`.tach-ls/`): index cache, zygote module list, impact store.

It carries its own `.gitignore` so it never shows up in `git status`, and a
`CACHEDIR.TAG` so backup tools skip it.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_DIR_NAME = ".tach-ls"
_GITIGNORE = "# Created by tach-ls: caches that are safe to delete.\n*\n"
_TAG = "Signature: 8a477f597d28d172789f06886806bc55\n# tach-ls cache folder\n"


def cache_dir(root: Path) -> Path:
    """Return the cache folder of the workspace at `root`, creating it if it can.

    A read-only workspace still works: callers get the path and their writes
    fail, which they treat as "no cache".
    """
    override = os.environ.get("TACH_LS_CACHE_DIR")
    folder = Path(override) if override else root / CACHE_DIR_NAME
    try:
        folder.mkdir(parents=True, exist_ok=True)
        ignore = folder / ".gitignore"
        if not ignore.exists():
            ignore.write_text(_GITIGNORE)
            (folder / "CACHEDIR.TAG").write_text(_TAG)
    except OSError:
        pass
    return folder
