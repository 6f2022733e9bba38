"""The language server (pygls): handlers only; each parses, calls the workspace, converts.

For now it answers the LSP lifecycle (initialize, shutdown, exit) and offers
code lenses from the static index; the full server (runs, diagnostics,
coverage, run-on-save) builds on the same handlers.
"""

from __future__ import annotations

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from tach_ls import __version__

server = LanguageServer("tach-ls", __version__)


@server.feature(types.INITIALIZED)
def on_initialized(ls: LanguageServer, params: types.InitializedParams) -> None:
    ls.window_log_message(types.LogMessageParams(types.MessageType.Info, f"tach-ls {__version__} ready"))


def serve() -> None:
    """Serve LSP over stdio until the client says exit."""
    server.start_io()
