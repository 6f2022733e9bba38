"""Debug runs: the worker listens for a debugpy client before it runs its test (stdlib + debugpy).

`listen()` imports debugpy from the project's interpreter (it is the
project's dependency, not tach-ls's), listens on a free loopback port and
returns the address, which the worker reports before `wait()` blocks until
the editor's debugger attaches. A missing debugpy is a clear error naming
the interpreter and the fix.
"""

from __future__ import annotations

import sys
from typing import Any


class DebugUnavailable(RuntimeError):
    """debugpy cannot be used in this interpreter; the message says how to fix it."""


def listen(host: str = "127.0.0.1") -> tuple[str, int]:
    try:
        import debugpy  # type: ignore[import-not-found]
    except ImportError:
        raise DebugUnavailable(
            f"debugpy is not installed in the project's interpreter {sys.executable}: "
            f"install it with `{sys.executable} -m pip install debugpy`"
        ) from None
    address: Any = debugpy.listen((host, 0))
    return str(address[0]), int(address[1])


def wait() -> None:
    import debugpy  # type: ignore[import-not-found]

    debugpy.wait_for_client()
