"""Engine warnings reach the editor's log: a project module that starts a thread at import (the zygote
forks with it alive) is named in a `window/logMessage`, once. A real client and engine; nothing sleeps."""

from __future__ import annotations

from pathlib import Path

import pytest
from lsprotocol import types

from tach_ls import protocol
from tests.e2e.harness import copy_project, start, stop

pytestmark = pytest.mark.e2e


def get(obj: object, key: str) -> object:
    return obj[key] if isinstance(obj, dict) else getattr(obj, key)


async def test_engine_warnings_are_logged_once(tmp_path: Path) -> None:
    root = copy_project("engine_threads", tmp_path)
    s = await start(root, {"workers": 2}, tmp_home=tmp_path / "home")
    try:
        def thread_warnings() -> list[object]:
            return [m for m in s.seen.get(types.WINDOW_LOG_MESSAGE, []) if "threadmod" in str(get(m, "message"))]

        await s.command(protocol.CMD_RUN_ALL)
        await s.wait_until(lambda: bool(thread_warnings()))
        [warning] = thread_warnings()
        assert get(warning, "type") == types.MessageType.Warning
        await s.command(protocol.CMD_RUN_ALL)
        assert len(thread_warnings()) == 1, "each warning is logged once"
    finally:
        await stop(s)
