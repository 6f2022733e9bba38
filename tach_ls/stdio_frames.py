"""The server's stdin as whole JSON-RPC frames: one hop to the event loop per message.

pygls reads stdin through its thread pool one line at a time: the header,
the blank line and the body of every message are three trips from a pool
thread to the event loop, each a thread wake-up and a GIL hand-over (about
half a millisecond of every click, counting the client's answers to the
server's requests). `FrameReader` keeps one thread reading whole frames and
hands each to the loop once; pygls's own `readline` / `readexactly` calls
are then served from memory. Bytes are passed through unchanged, so what
pygls makes of a malformed frame is what it always made of it.
"""

from __future__ import annotations

import asyncio
import threading
from typing import BinaryIO

_LENGTH = b"content-length:"


def read_frame(stream: BinaryIO) -> bytes:
    """The header lines, the blank line and the body of one message, as read; b"" at the end of the stream."""
    raw = b""
    length = 0
    while True:
        line = stream.readline()
        raw += line
        if not line:
            return raw
        if line.lower().startswith(_LENGTH):
            try:
                length = int(line[len(_LENGTH) :].strip())
            except ValueError:
                length = 0
        if not line.strip():
            break
    return raw + stream.read(length) if length > 0 else raw


class FrameReader:
    """pygls's AsyncReader over a binary stream, fed by one reading thread."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self._buffer = b""
        self._frames: asyncio.Queue[bytes] | None = None
        self._ended = False

    def _start(self) -> asyncio.Queue[bytes]:
        loop = asyncio.get_running_loop()
        frames: asyncio.Queue[bytes] = asyncio.Queue()

        def pump() -> None:
            while True:
                try:
                    frame = read_frame(self.stream)
                except (OSError, ValueError):  # closed under us: the end of the stream
                    frame = b""
                try:
                    loop.call_soon_threadsafe(frames.put_nowait, frame)
                except RuntimeError:  # the loop is closed: the server is gone
                    return
                if not frame:
                    return

        threading.Thread(target=pump, name="tach-ls-stdin", daemon=True).start()
        self._frames = frames
        return frames

    async def _more(self) -> bool:
        if self._ended:
            return False
        frames = self._frames or self._start()
        frame = await frames.get()
        if not frame:
            self._ended = True
            return False
        self._buffer += frame
        return True

    async def readline(self) -> bytes:
        while b"\n" not in self._buffer:
            if not await self._more():
                line, self._buffer = self._buffer, b""
                return line
        cut = self._buffer.index(b"\n") + 1
        line, self._buffer = self._buffer[:cut], self._buffer[cut:]
        return line

    async def readexactly(self, n: int) -> bytes:
        while len(self._buffer) < n:
            if not await self._more():
                break
        data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data
