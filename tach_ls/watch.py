"""Watch each workspace root for changes made outside the editor (git checkout, generated files).

A debounced `watchfiles` loop per folder: changed test modules are
re-indexed (unless open in the editor, whose buffer is the truth), deleted
ones lose their tests and diagnostics, a changed pytest config rebuilds the
index, and the engine hears about every change so stale zygote layers are
rebuilt before the next run. `.git`, virtualenvs and caches are ignored.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from watchfiles import Change, DefaultFilter, awatch

from tach_ls import protocol
from tach_ls.config import CONFIG_NAMES
from tach_ls.workspace import Workspace

log = logging.getLogger("tach_ls.watch")
DEBOUNCE_MS = 150
IGNORED_DIRS = {".tach-ls", ".tox", ".nox", ".venv", "venv", ".mypy_cache", ".ruff_cache", "node_modules", "build", "dist"}


class _Filter(DefaultFilter):
    def __init__(self) -> None:
        super().__init__(ignore_dirs=tuple(set(DefaultFilter.ignore_dirs) | IGNORED_DIRS))

    def __call__(self, change: Change, path: str) -> bool:
        return super().__call__(change, path) and (path.endswith(".py") or Path(path).name in CONFIG_NAMES or change == Change.deleted)


def apply_changes(ws: Workspace, changes: set[tuple[Change, str]]) -> list[protocol.TestsChanged]:
    """Bring the index up to date with files changed on disk; the trees that changed.

    Runs off the event loop: it only touches the index and results, never the client.
    """
    trees: dict[str, protocol.TestsChanged] = {}
    paths = sorted({p for _, p in changes})
    if any(Path(p).name in CONFIG_NAMES for p in paths):
        ws.index = type(ws.index)(ws.root)
        ws.index.build()
        return [ws.file_tree(rel) for rel in ws.index.files]
    for change, path in sorted(changes, key=lambda c: c[1]):
        rel = ws.index_rel(Path(path))
        if rel in ws.buffers:
            continue  # the editor's buffer is what we index while it is open
        if change == Change.deleted or not Path(path).exists():
            if rel in ws.index.files:
                trees[rel] = ws.forget_file(rel)
            continue
        ws.index.update_file(Path(path))
        for changed in ws.index.last_changed:
            trees[changed] = ws.file_tree(changed)
    return list(trees.values())


OffLoop = Callable[..., Awaitable[Any]]


async def watch(ws: Workspace, send: Callable[[list[protocol.TestsChanged]], None], stop: asyncio.Event, off_loop: OffLoop) -> None:
    try:
        async for changes in awatch(ws.root, watch_filter=_Filter(), debounce=DEBOUNCE_MS, stop_event=stop, recursive=True):
            try:
                trees = await off_loop(apply_changes, ws, changes)
                send(trees)
                for tree in trees:
                    if not tree.tests:  # a file that went away: clear what was shown for it
                        ws.publish(ws.rel(tree.uri))
                if ws.engine is not None:
                    ws.engine.notify_changed([p for _, p in changes])
            except Exception:
                log.exception("could not apply file changes")
    except Exception:
        log.exception("file watching stopped for %s", ws.root)
