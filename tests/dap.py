"""A minimal Debug Adapter Protocol client over TCP, for tests that attach to a debug worker.

What an editor's debugger does, and no more: Content-Length framed JSON
messages, requests numbered by ``seq``, a reader thread that keeps every
response and event in arrival order, and bounded waits (never a bare sleep).
``attach()`` is the handshake VS Code does for an ``attach`` configuration:
``initialize``, ``attach``, the ``initialized`` event, breakpoints,
``configurationDone``; that is what releases debugpy's ``wait_for_client()``.

``venv_without_debugpy()`` makes the other case real: an interpreter that
has pytest and everything else of a base interpreter's, but no debugpy.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

Message = dict[str, Any]
BOUND = 60.0


class DapError(AssertionError):
    """The adapter answered an error, or said nothing in time."""


class DapClient:
    def __init__(self, host: str, port: int, connect_bound: float = 30.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=connect_bound)
        self.sock.settimeout(None)
        self.received: list[Message] = []
        self.closed = False
        self._seq = 0
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, name="dap-client", daemon=True)
        self._reader.start()

    # -- transport ---------------------------------------------------------------------------
    def send(self, command: str, arguments: dict[str, Any] | None = None) -> int:
        """Send a request; its ``seq`` (pass it to ``response``)."""
        with self._changed:
            self._seq += 1
            seq = self._seq
        body = json.dumps({"seq": seq, "type": "request", "command": command, "arguments": arguments or {}}).encode()
        self.sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        return seq

    def _read(self) -> None:
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = self.sock.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, buffer = buffer.split(b"\r\n\r\n", 1)
                length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))  # fmt: skip
                while len(buffer) < length:
                    chunk = self.sock.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                body, buffer = buffer[:length], buffer[length:]
                with self._changed:
                    self.received.append(json.loads(body))
                    self._changed.notify_all()
        except OSError:
            return
        finally:
            with self._changed:
                self.closed = True
                self._changed.notify_all()

    def wait_for(self, predicate: Callable[[Message], bool], what: str, bound: float = BOUND) -> Message:
        """The first message (already received or arriving later) that matches."""
        deadline = time.monotonic() + bound
        index = 0
        with self._changed:
            while True:
                while index < len(self.received):
                    if predicate(self.received[index]):
                        return self.received[index]
                    index += 1
                left = deadline - time.monotonic()
                if self.closed or left <= 0:
                    state = "the adapter closed the connection" if self.closed else f"nothing within {bound}s"
                    raise DapError(f"waiting for {what}: {state}; received: {self.received[-5:]}")
                self._changed.wait(left)

    def response(self, seq: int, bound: float = BOUND) -> Message:
        reply = self.wait_for(lambda m: m.get("type") == "response" and m.get("request_seq") == seq, f"response {seq}", bound)
        if not reply.get("success"):
            raise DapError(f"{reply.get('command')} failed: {reply.get('message')} {reply.get('body')}")
        return reply

    def request(self, command: str, arguments: dict[str, Any] | None = None, bound: float = BOUND) -> Message:
        return self.response(self.send(command, arguments), bound)

    def event(self, name: str, bound: float = BOUND) -> Message:
        return self.wait_for(lambda m: m.get("type") == "event" and m.get("event") == name, f"event {name!r}", bound)

    def wait_closed(self, bound: float = BOUND) -> None:
        """Until the adapter hangs up (the debuggee is gone)."""
        deadline = time.monotonic() + bound
        with self._changed:
            while not self.closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DapError(f"the adapter still connected after {bound}s")
                self._changed.wait(left)

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self._reader.join(5)

    # -- what an editor does -------------------------------------------------------------------
    def attach(self, breakpoints: dict[str, list[int]] | None = None) -> dict[str, list[Message]]:
        """The attach handshake; the breakpoints the adapter accepted, per file (1-based lines)."""
        self.request("initialize", {"clientID": "tach-ls-tests", "adapterID": "debugpy", "pathFormat": "path",
                                    "linesStartAt1": True, "columnsStartAt1": True})  # fmt: skip
        attach = self.send("attach", {"justMyCode": False})
        self.event("initialized")
        accepted: dict[str, list[Message]] = {}
        for path, lines in (breakpoints or {}).items():
            reply = self.request("setBreakpoints", {"source": {"path": path}, "breakpoints": [{"line": n} for n in lines]})
            accepted[path] = reply["body"]["breakpoints"]
        self.request("configurationDone")
        self.response(attach)
        return accepted

    def disconnect_after_exit(self, bound: float = BOUND) -> None:
        """Once the debuggee is gone the adapter says ``terminated``; disconnect as an editor does, until it hangs up."""
        self.event("terminated", bound)
        self.send("disconnect")
        self.wait_closed(bound)
        self.close()

    def evaluate_in_top_frame(self, thread_id: int, expression: str) -> str:
        frames = self.request("stackTrace", {"threadId": thread_id, "levels": 1})["body"]["stackFrames"]
        reply = self.request("evaluate", {"expression": expression, "frameId": frames[0]["id"], "context": "repl"})
        return str(reply["body"]["result"])


def attach_and_stop(host: str, port: int, path: str, line: int) -> tuple[DapClient, Message]:
    """Attach with one breakpoint and wait until the test stops there; the client and the ``stopped`` event."""
    client = DapClient(host, port)
    accepted = client.attach({path: [line]})
    assert accepted[path] and accepted[path][0].get("verified", True), accepted
    stopped = client.event("stopped")
    return client, stopped


def venv_without_debugpy(base_python: str, target: Path) -> Path:
    """``python -m venv`` whose site-packages holds everything of ``base_python``'s but debugpy."""
    subprocess.run([base_python, "-m", "venv", "--without-pip", str(target)], check=True, capture_output=True)
    python = target / "bin" / "python"
    site_of = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    base_site, site = (Path(subprocess.run([p, "-c", site_of], check=True, capture_output=True, text=True).stdout.strip())
                       for p in (base_python, str(python)))  # fmt: skip
    for entry in base_site.iterdir():
        if not entry.name.lower().startswith("debugpy"):
            (site / entry.name).symlink_to(entry)
    probe = subprocess.run([str(python), "-c", "import pytest\ntry:\n    import debugpy\nexcept ImportError:\n    pass\n"
                            "else:\n    raise SystemExit('debugpy importable')"], capture_output=True, text=True)  # fmt: skip
    assert probe.returncode == 0, f"the venv must have pytest and no debugpy: {probe.stderr}"
    return python
