"""The server's answer to `initialize`, known before pygls is imported (see `early`).

pygls builds the answer from the server's registered features; for tach-ls
it hardly depends on the client: positions are always UTF-16
(`server._Protocol`), and the only other client-dependent parts of pygls's
builder are features tach-ls does not have (rename; willSave, which pygls
answers `false` when the client states its own support either way, and
leaves out otherwise). So the first session of a client answers as early
as later ones. The e2e tests compare
this with what the real server answers, for each client profile: a feature
added to the server without updating this fails there.
"""

from __future__ import annotations

from typing import Any

from tach_ls import __version__
from tach_ls.protocol import COMMANDS


def initialize_result(client: dict[str, Any] | None = None) -> dict[str, Any]:
    """The `initialize` result for a client with these capabilities (the `capabilities` of its params)."""
    sync: dict[str, Any] = {"openClose": True, "change": 2, "save": {"documentSelector": None, "includeText": False}}
    document = (client if isinstance(client, dict) else {}).get("textDocument")
    stated = (document.get("synchronization") if isinstance(document, dict) else None) or {}
    for key in ("willSave", "willSaveWaitUntil"):
        if isinstance(stated, dict) and stated.get(key) is not None:
            sync[key] = False
    return {
        "capabilities": {
            "positionEncoding": "utf-16",
            "textDocumentSync": sync,
            "hoverProvider": True,
            "codeLensProvider": {"resolveProvider": False},
            "executeCommandProvider": {"commands": list(COMMANDS)},
            "workspace": {"workspaceFolders": {"supported": True, "changeNotifications": True}, "fileOperations": {}},
        },
        "serverInfo": {"name": "tach-ls", "version": __version__},
    }
