"""Debug runs: the worker listens for a debugpy client before it runs its test (stdlib + debugpy).

Zygote side. `listen()` imports debugpy from the project's interpreter (it
is the project's dependency, not tach-ls's), listens on a free loopback port
and returns the address: debugpy starts its DAP adapter there, so an editor
speaks DAP to it directly (VS Code's Python debugger, or any DAP client).
`wait()` blocks until the client has attached and finished configuring
(breakpoints set). A missing debugpy is a clear error naming the
interpreter and the fix.

`attach_point()` is the whole step a debug worker takes between its fork
and its test: listen, report ``debug_listening`` (or ``debug_failed`` and the
test as an error), wait. A debug worker keeps the host's network
(``ISOLATION_SKIP``): in a network namespace of its own its port could not be
reached from the editor. debugpy's adapter leaves the worker's process group
(it daemonizes), and exits by itself once the worker is gone.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

ISOLATION_SKIP = ("net",)
"""Isolation features a debug worker leaves out (see ``namespaces.enter(skip=...)``)."""


class DebugUnavailable(RuntimeError):
    """debugpy cannot be used in this interpreter; the message says how to fix it."""


def listen(host: str = "127.0.0.1") -> tuple[str, int]:
    try:
        import debugpy  # type: ignore[import-not-found,unused-ignore]  # the project's, when it has it
    except ImportError:
        raise DebugUnavailable(
            f"debugpy is not installed in the project's interpreter {sys.executable}: "
            f"install it with `{sys.executable} -m pip install debugpy`"
        ) from None
    address: Any = debugpy.listen((host, 0))
    return str(address[0]), int(address[1])


def wait() -> None:
    import debugpy  # type: ignore[import-not-found,unused-ignore]

    debugpy.wait_for_client()


def attach_point(send: Callable[..., None], worker: int, nodeid: str, path: str, line: int | None) -> bool:
    """Listen, report where, and wait for the debugger; False when it cannot be (the test is then reported).

    ``path`` and ``line`` (1-based) place the error result of a test that
    cannot be debugged, as its failure would be.
    """
    try:
        host, port = listen()
    except Exception as exc:  # noqa: BLE001 (debugpy raises RuntimeError for a port or adapter it cannot get)
        reason = str(exc) if isinstance(exc, DebugUnavailable) else f"debugpy could not listen for a debugger: {exc}"
        send("debug_failed", worker=worker, reason=reason)
        result = {"nodeid": nodeid, "status": "error", "message": reason, "longrepr": reason, "path": path,
                  "line": line, "worker": os.getpid()}  # fmt: skip
        send("test_finished", worker=worker, result=result)
        return False
    send("debug_listening", worker=worker, host=host, port=port)
    wait()
    return True
