"""Framed messages between the supervisor, the zygote layers and the workers.

Standard library only: this module runs in the project's interpreter.

Transport: an ``AF_UNIX`` ``SOCK_SEQPACKET`` connection. Each message is one
JSON object ``{"op": NAME, ...}`` sent as one packet, and a packet is written
atomically by the kernel. That is what lets every worker forked from the
collected layer write its results straight onto the layer's own connection,
without a relay and without interleaving. A message larger than one packet is
cut into chunks tagged with the sender's pid; packets of one sender arrive in
order, so the receiver glues them back per pid.

Receivers dispatch by name: a message ``{"op": "test_finished"}`` calls
``handler.on_test_finished(msg)`` (see ``dispatch``).
"""

from __future__ import annotations

import array
import json
import os
import socket
import struct
from typing import Any, Protocol

Message = dict[str, Any]

# The default AF_UNIX send buffer is 212992 bytes; a packet must fit in it.
MAX_PACKET = 160_000
_WHOLE = b"M"
_CHUNK = b"C"
_CHUNK_HEAD = struct.Struct("!cIB")  # kind, sender pid, last-chunk flag
_RECV_SIZE = MAX_PACKET + 64


class WireError(RuntimeError):
    """A packet that does not decode: a bug on the other side, never user data."""


def listen(path: str) -> socket.socket:
    """A listening SEQPACKET socket at ``path`` (the supervisor's end)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sock.bind(path)
    sock.listen(16)
    return sock


def connect(path: str) -> socket.socket:
    """Connect a zygote layer to the supervisor's listening socket."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sock.connect(path)
    return sock


def encode(op: str, fields: Message) -> bytes:
    """The JSON text of one message (no framing)."""
    body = dict(fields)
    body["op"] = op
    return json.dumps(body, separators=(",", ":"), default=str).encode("utf-8", "replace")


def send(sock: socket.socket, op: str, **fields: Any) -> None:
    """Send one message, chunked when it does not fit in a packet."""
    data = encode(op, fields)
    if len(data) + 1 <= MAX_PACKET:
        sock.send(_WHOLE + data)
        return
    pid = os.getpid()
    step = MAX_PACKET - _CHUNK_HEAD.size
    for start in range(0, len(data), step):
        last = 1 if start + step >= len(data) else 0
        sock.send(_CHUNK_HEAD.pack(_CHUNK, pid, last) + data[start : start + step])


def send_fds(sock: socket.socket, op: str, fds: list[int], **fields: Any) -> None:
    """Send one small message with file descriptors attached (``SCM_RIGHTS``); the receiver gets copies.

    The supervisor reads them with ``socket.recv_fds`` and hands them to the
    handler as ``msg["_fds"]``; a handler that keeps one removes it from there.
    """
    data = encode(op, fields)
    if len(data) + 1 > MAX_PACKET:
        raise WireError(f"a message with descriptors must fit one packet ({op})")
    socket.send_fds(sock, [_WHOLE + data], fds)


def recv_fds(sock: socket.socket, size: int, flags: int = 0, max_fds: int = 4) -> tuple[bytes, list[int]]:
    """One packet and the descriptors attached to it (``socket.recv_fds`` ignores ``flags`` up to 3.12)."""
    fds = array.array("i")
    data, ancillary, _, _ = sock.recvmsg(size, socket.CMSG_LEN(max_fds * fds.itemsize), flags)
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
    return data, list(fds)


class Receiver:
    """Reads whole messages from one connection, gluing chunks per sender."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._partial: dict[int, list[bytes]] = {}

    def recv(self) -> Message | None:
        """The next whole message; None at end of stream.

        Blocks until a packet arrives; a chunk that is not the last returns
        the next message only once the sender's last chunk is in.
        """
        while True:
            packet = self.sock.recv(_RECV_SIZE)
            if not packet:
                return None
            message = self.feed(packet)
            if message is not None:
                return message

    def feed(self, packet: bytes) -> Message | None:
        """Account one packet; the message it completes, if any."""
        kind = packet[:1]
        if kind == _WHOLE:
            return decode(packet[1:])
        if kind == _CHUNK:
            _, pid, last = _CHUNK_HEAD.unpack_from(packet)
            parts = self._partial.setdefault(pid, [])
            parts.append(packet[_CHUNK_HEAD.size :])
            if not last:
                return None
            del self._partial[pid]
            return decode(b"".join(parts))
        raise WireError(f"unknown packet kind {kind!r}")


def decode(data: bytes) -> Message:
    try:
        message = json.loads(data)
    except ValueError as exc:
        raise WireError(f"undecodable message: {exc}") from exc
    if not isinstance(message, dict) or not isinstance(message.get("op"), str):
        raise WireError("a message must be an object with a string 'op'")
    return message


class Handler(Protocol):
    """Anything with ``on_<op>(msg)`` methods."""


def dispatch(handler: object, message: Message) -> None:
    """Call ``handler.on_<op>(message)``; unknown ops are a wire error."""
    method = getattr(handler, "on_" + message["op"], None)
    if method is None:
        raise WireError(f"{type(handler).__name__} has no handler for {message['op']!r}")
    method(message)


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with a visible marker when cut."""
    if len(text) <= limit:
        return text
    dropped = len(text) - limit
    return text[:limit] + f"\n[... tach-ls: {dropped} more characters not shown]\n"
