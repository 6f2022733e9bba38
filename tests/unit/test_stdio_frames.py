"""The server's stdin reader hands pygls exactly the bytes pygls's own reader would, a frame at a time.

A regression here is a server that drops, merges or truncates messages:
every case goes through a real pipe, with the writer pausing mid-frame, and
pygls's own reading loop decides what the bytes mean.
"""

from __future__ import annotations

import asyncio
import os
import threading

from tach_ls.stdio_frames import FrameReader


def frame(body: bytes) -> bytes:
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


async def read_all(chunks: list[bytes]) -> list[bytes]:
    """Feed `chunks` through a pipe (each write separate, so frames arrive split); return what pygls's loop parses."""
    read_fd, write_fd = os.pipe()
    go = [threading.Event() for _ in chunks]

    def writer() -> None:
        for chunk, event in zip(chunks, go):
            event.wait(10)
            os.write(write_fd, chunk)
        os.close(write_fd)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    reader = FrameReader(os.fdopen(read_fd, "rb"))
    got: list[bytes] = []
    content_length = 0
    for event in go:
        event.set()
    while True:  # what pygls.io_.run_async does with a reader
        header = await reader.readline()
        if not header:
            break
        if not content_length and header.lower().startswith(b"content-length:"):
            content_length = int(header.split(b":")[1])
        if content_length and not header.strip():
            got.append(await reader.readexactly(content_length))
            content_length = 0
    thread.join(10)
    return got


def test_whole_split_and_back_to_back_frames() -> None:
    one, two, three = b'{"id":1}', b'{"method":"x","params":{"t":"\xc3\xa9"}}', b"{}"
    data = frame(one) + frame(two) + frame(three)
    chunks = [data[:7], data[7:30], data[30:31], data[31:]]  # cut inside headers and bodies
    assert asyncio.run(read_all(chunks)) == [one, two, three]


def test_extra_headers_and_a_stream_that_ends_mid_frame() -> None:
    body = b'{"id":2}'
    data = b"Content-Type: application/vscode-jsonrpc\r\n" + frame(body) + b"Content-Length: 50\r\n\r\n{\"trunc"
    assert asyncio.run(read_all([data])) == [body, b'{"trunc']


def test_a_malformed_header_reaches_pygls_as_it_came() -> None:
    """No Content-Length: the lines pass through and the next good frame still parses."""
    good = b'{"id":3}'
    assert asyncio.run(read_all([b"garbage line\r\n\r\n" + frame(good)])) == [good]
