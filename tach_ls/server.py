"""The language server (pygls 2): handlers only; each parses, calls a workspace, converts, returns.

Features: the test tree (`tach/testsChanged`) from the static index at start
and after each edit (debounced, off the event loop); code lenses that follow
the buffer; `tach.*` commands that run tests through the warm engine and
stream results; run on save; diagnostics; `tach/status`. The logic lives in
`workspace`, `runner`, `views` and `report`; the engine is injected so tests
can replace it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from collections.abc import Awaitable, Generator
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.io_ import StdoutWriter, run_async
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method

from tach_ls import __version__, protocol
from tach_ls.folders import Folder, Folders
from tach_ls.runner import DebugFailed
from tach_ls.stdio_frames import FrameReader
from tach_ls.uris import uri_to_path
from tach_ls.workspace import EngineFactory

log = logging.getLogger("tach_ls.server")
DEBOUNCE_S = 0.05
SETTLE_BOUND_S = 10.0  # seconds a request about a document waits for the index (see TachServer.settled)


class CommandError(Exception):
    """A command's arguments are wrong: becomes an error response with this message."""


class _Protocol(LanguageServerProtocol):
    """pygls with two corrections.

    - Positions are UTF-16 whatever the client offers: every column tach-ls
      sends or reads is in UTF-16 units (`positions`), while pygls takes the
      client's first choice (Neovim offers utf-8 first), which put lens and
      diagnostic ends short on lines with non-ASCII text. Every client must
      support utf-16.
    - pygls runs `workspace/executeCommand` through a generator, so
      `$/cancelRequest` does not reach the command's coroutine: cancel it here
      (runs then stop their workers).
    """

    @lsp_method(types.INITIALIZE)
    def lsp_initialize(self, params: types.InitializeParams) -> Generator[Any, Any, types.InitializeResult]:
        general = params.capabilities.general
        if general is not None and general.position_encodings:
            general.position_encodings = [types.PositionEncodingKind.Utf16]
        return (yield from super().lsp_initialize(params))

    def _handle_cancel_notification(self, msg_id: Any) -> None:
        super()._handle_cancel_notification(msg_id)
        task = self._server.cancellable.pop(msg_id, None)  # type: ignore[attr-defined]
        if task is not None:
            task.cancel()


class TachServer(LanguageServer):
    def __init__(self, engine_factory: EngineFactory) -> None:
        super().__init__("tach-ls", __version__, protocol_cls=_Protocol)
        self.cancellable: dict[Any, asyncio.Task[Any]] = {}  # request id -> the command's task
        self.exit_code = 0
        self.folders = Folders(_LspClient(self), engine_factory)
        self._pending: dict[str, tuple[asyncio.TimerHandle, str, int | None]] = {}  # uri -> debounced re-index
        self._builds = 1  # folder builds not done yet: the first is `initialized`'s
        self._built = asyncio.Event()
        self._index_lock = asyncio.Lock()
        self._watchers: list[asyncio.Event] = []

    def _start_io_async(self, stdin: Any = None, stdout: Any = None) -> None:
        """pygls's stdio server, reading whole frames (see `stdio_frames`) instead of a line per pool trip."""
        self._stop_event = threading.Event()
        self.protocol.set_writer(StdoutWriter(stdout or sys.stdout.buffer))
        try:
            reader = FrameReader(stdin or sys.stdin.buffer)
            asyncio.run(run_async(self._stop_event, reader, self.protocol, logging.getLogger("pygls.server"), self.report_server_error))
        except BrokenPipeError:
            log.error("connection to the client lost; shutting down")
            self.exit_code = 1
        except SystemExit as exc:  # `exit`: 0 after `shutdown`, else 1 (pygls raises it in the loop)
            self.exit_code = exc.code if isinstance(exc.code, int) else 1
        except KeyboardInterrupt:
            pass
        finally:
            self.shutdown()  # type: ignore[no-untyped-call]

    # -- helpers used by handlers ---------------------------------------------------
    def folder(self, uri: str) -> Folder:
        folder = self.folders.for_uri(uri)
        if folder is None:
            raise CommandError(f"{uri} is not inside a workspace folder")
        return folder

    async def cancellable_run(self, runner: Any, targets: list[str], reason: str, coverage: bool = False) -> dict[str, Any]:
        """A run that `$/cancelRequest` of the current request can stop."""
        return await self.cancellable_call(runner.run(targets, reason, coverage))  # type: ignore[no-any-return]

    async def cancellable_call(self, work: Awaitable[Any]) -> Any:
        """Await `work` so that `$/cancelRequest` of the current request cancels it."""
        msg_id = self.protocol._ctx_msg_id.get(None)
        task = asyncio.current_task()
        if msg_id is not None and task is not None:
            self.cancellable[msg_id] = task
        try:
            return await work
        finally:
            if msg_id is not None:
                self.cancellable.pop(msg_id, None)

    def folder_for_nodeids(self, nodeids: list[str], folder_uri: Any) -> Folder:
        if isinstance(folder_uri, str):
            return self.folder(folder_uri)
        folders = self.folders.all()
        for folder in folders:
            if any((folder.ws.index.root / n.split("::", 1)[0]).exists() for n in nodeids):
                return folder
        if len(folders) == 1:
            return folders[0]
        raise CommandError(f'no workspace folder has {nodeids[0]}; pass "folder" with the folder\'s URI')

    def start_watching(self, folder: Folder) -> None:
        from tach_ls.watch import watch

        stop = asyncio.Event()
        self._watchers.append(stop)
        asyncio.get_running_loop().create_task(watch(folder.ws, self.send_trees, stop, self.off_loop))

    def stop_watching(self) -> None:
        for stop in self._watchers:
            stop.set()

    async def off_loop(self, fn: Any, *args: Any) -> Any:
        """Index work in a thread, one at a time (the index is not thread-safe)."""
        async with self._index_lock:
            return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    def send_trees(self, trees: list[protocol.TestsChanged]) -> None:
        for tree in trees:
            self.protocol.notify(protocol.TESTS_CHANGED, protocol.payload(tree))

    def schedule_reindex(self, uri: str, text: str, version: int | None) -> None:
        """Debounce buffer edits per document: only the latest text is indexed."""
        old = self._pending.pop(uri, None)
        if old is not None:
            old[0].cancel()
        loop = asyncio.get_running_loop()
        timer = loop.call_later(DEBOUNCE_S, lambda: loop.create_task(self._reindex(uri, text, version)))
        self._pending[uri] = (timer, text, version)

    def building(self, delta: int) -> None:
        """A folder build starts (+1) or ends (-1); `settled` waits while any is going."""
        self._builds += delta
        if self._builds > 0:
            self._built.clear()
        else:
            self._built.set()

    async def settled(self, uri: str) -> None:
        """What the index owes this document before answering about it: the folders' builds and its pending re-index.

        A client sends `initialized`, `didOpen` and `codeLens` back to back,
        and the early tree (see `early`) lets it save or click before the real
        server has built its index: answering from an index still being built
        (or from the text before the debounced edit) gave no lenses, the old
        ones, or a save that ran nothing.
        """
        try:
            await asyncio.wait_for(self._built.wait(), SETTLE_BOUND_S)
        except asyncio.TimeoutError:  # a client that never says `initialized`: answer from what there is
            return
        pending = self._pending.pop(uri, None)
        if pending is not None:
            timer, text, version = pending
            timer.cancel()
            await self._reindex(uri, text, version)

    async def _reindex(self, uri: str, text: str, version: int | None) -> None:
        self._pending.pop(uri, None)
        folder = self.folders.for_uri(uri)
        if folder is None:
            return
        trees = await self.off_loop(folder.ws.update_buffer, uri, text, version)
        self.send_trees(trees)
        _LspClient(self).refresh_lenses()


class _LspClient:
    """The `Client` a workspace talks to: LSP messages on this server's connection."""

    def __init__(self, server: TachServer) -> None:
        self.server = server

    def _caps(self) -> types.ClientCapabilities | None:
        try:
            return self.server.client_capabilities
        except Exception:
            return None

    def notify(self, method: str, params: Any) -> None:
        self.server.protocol.notify(method, params)

    def publish_diagnostics(self, uri: str, version: int | None, diagnostics: list[types.Diagnostic]) -> None:
        self.server.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics, version=version))

    def refresh_lenses(self) -> None:
        caps = self._caps()
        ws_caps = caps.workspace if caps else None
        if ws_caps and ws_caps.code_lens and ws_caps.code_lens.refresh_support:
            self.server.workspace_code_lens_refresh(None)

    async def progress_begin(self, token: str, title: str) -> bool:
        caps = self._caps()
        if not (caps and caps.window and caps.window.work_done_progress):
            return False
        await self.server.work_done_progress.create_async(token)
        self.server.work_done_progress.begin(token, types.WorkDoneProgressBegin(title=title, cancellable=True, percentage=0))
        return True

    def progress(self, token: str, kind: str, message: str, percentage: int | None = None) -> None:
        wdp = self.server.work_done_progress
        if kind == "report":
            wdp.report(token, types.WorkDoneProgressReport(message=message, percentage=percentage))
        else:
            wdp.end(token, types.WorkDoneProgressEnd(message=message))

    def show_error(self, message: str) -> None:
        self.server.window_show_message(types.ShowMessageParams(types.MessageType.Error, message))

    def log_warning(self, message: str) -> None:
        self.server.window_log_message(types.LogMessageParams(types.MessageType.Warning, message))


def _real_engine_factory(root: Path, settings: Any, on_state: Any) -> Any:
    from tach_ls.engine_factory import make_engine

    return make_engine(root, settings, on_state)


def create_server(engine_factory: EngineFactory | None = None) -> TachServer:
    server = TachServer(engine_factory or _real_engine_factory)

    @server.feature(types.INITIALIZE)
    def on_initialize(ls: TachServer, params: types.InitializeParams) -> None:
        options = params.initialization_options
        ls.folders.editor_settings = _settings_section(options)
        roots = [uri_to_path(f.uri) for f in params.workspace_folders or []]
        if not roots and params.root_uri:
            roots = [uri_to_path(params.root_uri)]
        for root in roots:
            ls.folders.add(root)

    @server.feature(types.INITIALIZED)
    async def on_initialized(ls: TachServer, params: types.InitializedParams) -> None:
        for warning in ls.folders.warnings:
            ls.window_log_message(types.LogMessageParams(types.MessageType.Warning, warning))
        try:
            for folder in ls.folders.all():
                trees = await ls.off_loop(folder.ws.build_index)
                ls.send_trees(trees)
                folder.ws.loop = asyncio.get_running_loop()
                ls.start_watching(folder)
                try:
                    folder.ws.ensure_engine()  # warm up now so the first click is fast
                except Exception as exc:
                    ls.window_show_message(types.ShowMessageParams(types.MessageType.Error, f"tach-ls: {exc}"))
        finally:
            ls.building(-1)

    @server.feature(types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)
    async def on_folders(ls: TachServer, params: types.DidChangeWorkspaceFoldersParams) -> None:
        for removed in params.event.removed:
            ls.folders.remove(uri_to_path(removed.uri))
        for added in params.event.added:
            folder = ls.folders.add(uri_to_path(added.uri))
            ls.building(+1)
            try:
                ls.send_trees(await ls.off_loop(folder.ws.build_index))
            finally:
                ls.building(-1)

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    def on_configuration(ls: TachServer, params: types.DidChangeConfigurationParams) -> None:
        for warning in ls.folders.update_settings(_settings_section(params.settings)):
            ls.window_log_message(types.LogMessageParams(types.MessageType.Warning, warning))

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def on_open(ls: TachServer, params: types.DidOpenTextDocumentParams) -> None:
        doc = params.text_document
        ls.schedule_reindex(doc.uri, doc.text, doc.version)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def on_change(ls: TachServer, params: types.DidChangeTextDocumentParams) -> None:
        doc = ls.workspace.get_text_document(params.text_document.uri)
        ls.schedule_reindex(doc.uri, doc.source, params.text_document.version)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    async def on_close(ls: TachServer, params: types.DidCloseTextDocumentParams) -> None:
        folder = ls.folders.for_uri(params.text_document.uri)
        if folder is not None:
            ls.send_trees(await ls.off_loop(folder.ws.close_buffer, params.text_document.uri))

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE, types.TextDocumentSaveRegistrationOptions(include_text=False))
    async def on_save(ls: TachServer, params: types.DidSaveTextDocumentParams) -> None:
        await ls.settled(params.text_document.uri)  # the tests to run come from the index
        folder = ls.folders.for_uri(params.text_document.uri)
        if folder is None:
            return
        folder.ws.changed_since_run.add(str(uri_to_path(params.text_document.uri)))
        if folder.ws.settings.runOnSave == "off":
            return
        if folder.ws.engine is not None:
            folder.ws.engine.notify_changed([str(uri_to_path(params.text_document.uri))])
        folder.runner.on_save(folder.ws.save_targets(params.text_document.uri))

    @server.feature(types.TEXT_DOCUMENT_CODE_LENS)
    async def on_code_lens(ls: TachServer, params: types.CodeLensParams) -> list[types.CodeLens]:
        await ls.settled(params.text_document.uri)
        folder = ls.folders.for_uri(params.text_document.uri)
        if folder is None:
            return []
        return [
            types.CodeLens(
                range=types.Range(types.Position(lens.line, 0), types.Position(lens.line, 0)),
                command=types.Command(title=lens.title, command=lens.command, arguments=lens.arguments),
            )
            for lens in folder.ws.lenses(params.text_document.uri)
        ]

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    async def on_hover(ls: TachServer, params: types.HoverParams) -> types.Hover | None:
        await ls.settled(params.text_document.uri)
        folder = ls.folders.for_uri(params.text_document.uri)
        text = folder.ws.hover(params.text_document.uri, params.position.line) if folder else None
        if not text:
            return None
        return types.Hover(contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=text))

    @server.command(protocol.CMD_RUN_TESTS)
    async def run_tests(ls: TachServer, *args: Any) -> dict[str, Any]:
        spec = _one_object(args, protocol.CMD_RUN_TESTS)
        if "uri" in spec:
            folder = ls.folder(_str(spec, "uri"))
            await ls.settled(_str(spec, "uri"))
            targets = folder.ws.file_targets(_str(spec, "uri"))
        else:
            tests = spec.get("tests")
            if not isinstance(tests, list) or not tests or not all(isinstance(t, str) for t in tests):
                raise CommandError('tach.runTests takes [{"tests": [NODEID, ...]}] or [{"uri": URI}]')
            folder = ls.folder_for_nodeids(tests, spec.get("folder"))
            targets = tests
        return await ls.cancellable_run(folder.runner, targets, "command", spec.get("coverage") is True)

    @server.command(protocol.CMD_RUN_ALL)
    async def run_all(ls: TachServer, *args: Any) -> dict[str, Any]:
        spec = _one_object(args, protocol.CMD_RUN_ALL, optional=True)
        folders = [ls.folder(_str(spec, "folder"))] if "folder" in spec else ls.folders.all()
        if not folders:
            raise CommandError("no workspace folder is open")
        outcomes = [await ls.cancellable_run(f.runner, [], "all", spec.get("coverage") is True) for f in folders]
        return outcomes[0] if len(outcomes) == 1 else {"folders": outcomes}

    @server.command(protocol.CMD_RUN_AFFECTED)
    async def run_affected(ls: TachServer, *args: Any) -> dict[str, Any]:
        spec = _one_object(args, protocol.CMD_RUN_AFFECTED, optional=True)
        folders = [ls.folder(_str(spec, "folder"))] if "folder" in spec else ls.folders.all()
        outcomes = []
        paths = spec.get("paths")
        if paths is not None and (not isinstance(paths, list) or not all(isinstance(p, str) for p in paths)):
            raise CommandError('tach.runAffected takes [] or [{"paths": [PATH, ...]}]')
        for f in folders:
            targets = f.ws.affected_targets(paths)
            if targets is None:
                outcomes.append({"results": [], "total": 0, "passed": 0, "failed": 0, "skipped": 0, "errors": 0})
            else:
                outcomes.append(await ls.cancellable_run(f.runner, targets, "affected", spec.get("coverage") is True))
        return outcomes[0] if len(outcomes) == 1 else {"folders": outcomes}

    @server.command(protocol.CMD_CANCEL)
    def cancel(ls: TachServer, *args: Any) -> dict[str, Any]:
        spec = _one_object(args, protocol.CMD_CANCEL, optional=True)
        run_id = spec.get("run_id")
        if run_id is not None and not isinstance(run_id, int):
            raise CommandError("tach.cancel takes [{}] or [{\"run_id\": N}]")
        cancelled = [rid for f in ls.folders.all() for rid in f.runner.cancel(run_id)]
        return {"cancelled": cancelled}

    @server.command(protocol.CMD_DEBUG_TEST)
    async def debug_test(ls: TachServer, *args: Any) -> dict[str, Any]:
        spec = _one_object(args, protocol.CMD_DEBUG_TEST)
        nodeid = _str(spec, "test")
        folder = ls.folder_for_nodeids([nodeid], spec.get("folder"))
        try:
            return await ls.cancellable_call(folder.runner.debug(nodeid))  # type: ignore[no-any-return]
        except DebugFailed as exc:  # debugpy missing, unknown test...: the reason is the whole message
            raise JsonRpcException(code=types.LSPErrorCodes.RequestFailed, message=str(exc)) from None

    @server.feature(types.SHUTDOWN)
    async def on_shutdown(ls: TachServer, params: Any) -> None:
        ls.stop_watching()
        pending = [task for f in ls.folders.all() for task in f.runner.pending_records]
        if pending:
            await asyncio.wait(pending, timeout=5)  # finish recording runs before the stores close
        ls.folders.shutdown()

    return server




def _settings_section(options: Any) -> dict[str, Any] | None:
    if not isinstance(options, dict):
        return None
    for key in ("tach-ls", "tach_ls", "tach"):
        if isinstance(options.get(key), dict):
            return options[key]  # type: ignore[no-any-return]
    return options


def _one_object(args: tuple[Any, ...], name: str, optional: bool = False) -> dict[str, Any]:
    if not args and optional:
        return {}
    if len(args) != 1 or not isinstance(args[0], dict):
        raise CommandError(f"{name} takes one object argument, got {list(args)!r}")
    return args[0]


def _str(spec: dict[str, Any], key: str) -> str:
    value = spec.get(key)
    if not isinstance(value, str) or not value:
        raise CommandError(f'"{key}" must be a non-empty string')
    return value


def serve(stdin: Any = None, stdout: Any = None) -> None:
    """Serve LSP over stdio (or the given binary streams, see `early`) until the client says exit."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("tach_ls").setLevel(logging.INFO)
    server = create_server()
    server.start_io(stdin, stdout)
    # Leave now: the stdin thread may be blocked in a read on sys.stdin, and the interpreter's
    # shutdown would wait for that stream's lock and abort ("could not acquire lock").
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(server.exit_code)
