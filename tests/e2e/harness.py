"""A real LSP client (pytest-lsp) driving `python -m tach_ls` over stdio, and a notification recorder.

`Session.wait_for(method, predicate)` returns the first notification (already
received or arriving later) that matches, within a bound: tests never sleep.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from tach_ls import protocol
from tach_ls.uris import path_to_uri

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "projects"
WAIT_S = 60.0


def copy_project(name: str, dest: Path) -> Path:
    target = dest / name
    shutil.copytree(FIXTURES / name, target)
    return target


@dataclass
class Session:
    client: LanguageClient
    root: Path
    seen: dict[str, list[Any]] = field(default_factory=dict)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    initialize_result: Any = None  # the server's answer to `initialize`

    def record(self, method: str, params: Any) -> None:
        self.seen.setdefault(method, []).append(params)
        self._changed.set()

    async def wait_for(self, method: str, predicate: Callable[[Any], bool] = lambda p: True, timeout: float = WAIT_S) -> Any:
        async def scan() -> Any:
            index = 0
            while True:
                items = self.seen.get(method, [])
                while index < len(items):
                    if predicate(items[index]):
                        return items[index]
                    index += 1
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(scan(), timeout)

    async def wait_until(self, condition: Callable[[], bool], timeout: float = WAIT_S) -> None:
        async def loop() -> None:
            while not condition():
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(loop(), timeout)

    async def poll_until(self, condition: Callable[[], bool], timeout: float = WAIT_S) -> None:
        """For conditions no notification announces (the process table): a bounded poll in a thread."""

        def blocking() -> bool:
            tick = threading.Event()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if condition():
                    return True
                tick.wait(0.02)
            return False

        if not await asyncio.get_running_loop().run_in_executor(None, blocking):
            raise TimeoutError(f"condition not met within {timeout} s")

    def uri(self, rel: str) -> str:
        return path_to_uri(self.root / rel)

    def open(self, rel: str, text: str | None = None, version: int = 1) -> str:
        uri = self.uri(rel)
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, "python", version, text if text is not None else (self.root / rel).read_text()))
        )
        return uri

    def change(self, rel: str, text: str, version: int) -> None:
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                types.VersionedTextDocumentIdentifier(version=version, uri=self.uri(rel)),
                [types.TextDocumentContentChangeWholeDocument(text=text)],
            )
        )

    def save(self, rel: str, text: str, version: int) -> None:
        (self.root / rel).write_text(text)
        self.change(rel, text, version)
        self.client.text_document_did_save(types.DidSaveTextDocumentParams(types.TextDocumentIdentifier(self.uri(rel))))

    async def command(self, name: str, *args: Any) -> Any:
        return await self.client.workspace_execute_command_async(types.ExecuteCommandParams(command=name, arguments=list(args)))

    async def lenses(self, rel: str) -> list[tuple[int, str]]:
        result = await self.client.text_document_code_lens_async(types.CodeLensParams(types.TextDocumentIdentifier(self.uri(rel))))
        return [(lens.range.start.line, lens.command.title if lens.command else "") for lens in result or []]

    def diagnostics(self, rel: str) -> list[types.Diagnostic]:
        return list(self.client.diagnostics.get(self.uri(rel), []))


async def start(
    root: Path,
    settings: dict[str, Any] | None = None,
    client: str = "visual-studio-code",
    tmp_home: Path | None = None,
    env_extra: dict[str, str] | None = None,
    extra_folders: list[Path] | None = None,
    server_python: str | None = None,
) -> Session:
    """A real client over stdio with `server_python -m tach_ls` (default: this interpreter), initialized."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(env_extra or {})
    env["PYTHONPATH"] = str(ROOT)
    if tmp_home is not None:
        env["XDG_CACHE_HOME"] = str(tmp_home)
    config = ClientServerConfig(server_command=[server_python or sys.executable, "-m", "tach_ls"], server_env=env)
    lsp = await config.start()
    assert isinstance(lsp, LanguageClient)
    session = Session(lsp, root)
    for method in protocol.METHOD_TO_MESSAGE_TYPE:
        lsp.feature(method)(lambda params, m=method: session.record(m, params))
    lsp.feature(types.WORKSPACE_CODE_LENS_REFRESH)(lambda params: session.record(types.WORKSPACE_CODE_LENS_REFRESH, params))
    features = lsp.protocol.fm.features
    default = features[types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS]
    features[types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS] = lambda *a: (default(*a), session.record(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS, a[-1]))
    default_log = features.get(types.WINDOW_LOG_MESSAGE)
    features[types.WINDOW_LOG_MESSAGE] = lambda *a: (default_log(*a) if default_log else None, session.record(types.WINDOW_LOG_MESSAGE, a[-1]))
    session.initialize_result = await lsp.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities(client),
            workspace_folders=[types.WorkspaceFolder(path_to_uri(f), f.name) for f in [root, *(extra_folders or [])]],
            initialization_options={"tach-ls": settings or {}},
        )
    )
    return session


async def stop(session: Session) -> None:
    await asyncio.wait_for(session.client.shutdown_session(), WAIT_S)
    await session.client.stop()
