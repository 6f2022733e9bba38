"""The wire between supervisor, zygote and workers: framing, chunking, dispatch by name."""

from __future__ import annotations

import os
import socket

import pytest

from tach_ls.engine import wire


@pytest.fixture
def pair():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    yield a, b
    a.close()
    b.close()


def test_small_message_round_trip(pair) -> None:
    a, b = pair
    wire.send(a, "test_finished", worker=3, result={"nodeid": "t.py::x", "status": "passed"})
    assert wire.Receiver(b).recv() == {"op": "test_finished", "worker": 3, "result": {"nodeid": "t.py::x", "status": "passed"}}


def test_large_message_is_chunked_and_glued(pair) -> None:
    """The regression: a collection of thousands of items larger than one packet."""
    a, b = pair
    items = [[f"tests/test_{i}.py::test_{i}", "tests/x.py", i] for i in range(20_000)]
    receiver = wire.Receiver(b)
    import threading

    sender = threading.Thread(target=wire.send, args=(a, "items"), kwargs={"items": items})
    sender.start()
    message = receiver.recv()
    sender.join()
    assert message == {"op": "items", "items": items}


def test_chunks_of_two_senders_interleave_safely() -> None:
    receiver = wire.Receiver(socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET))
    big = b'{"op":"x","data":"' + b"a" * 10 + b'"}'
    head = wire._CHUNK_HEAD
    first = [head.pack(wire._CHUNK, 1, 0) + big[:10], head.pack(wire._CHUNK, 1, 1) + big[10:]]
    second = [head.pack(wire._CHUNK, 2, 0) + big[:5], head.pack(wire._CHUNK, 2, 1) + big[5:]]
    out = [receiver.feed(p) for p in (first[0], second[0], first[1], second[1])]
    receiver.sock.close()
    assert out[:2] == [None, None]
    assert out[2] == out[3] == {"op": "x", "data": "a" * 10}


def test_end_of_stream(pair) -> None:
    a, b = pair
    a.close()
    assert wire.Receiver(b).recv() is None


def test_dispatch_by_name() -> None:
    seen = []

    class Handler:
        def on_ready(self, msg):
            seen.append(msg["count"])

    wire.dispatch(Handler(), {"op": "ready", "count": 3})
    assert seen == [3]
    with pytest.raises(wire.WireError, match="no handler for 'nope'"):
        wire.dispatch(Handler(), {"op": "nope"})


def test_undecodable_packets_are_wire_errors() -> None:
    receiver = wire.Receiver(socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET))
    with pytest.raises(wire.WireError):
        receiver.feed(b"Mnot json")
    with pytest.raises(wire.WireError):
        receiver.feed(b"M[1, 2]")
    with pytest.raises(wire.WireError):
        receiver.feed(b"Zwhat")
    receiver.sock.close()


def test_clip_marks_what_it_cut() -> None:
    assert wire.clip("short", 10) == "short"
    clipped = wire.clip("x" * 100, 10)
    assert clipped.startswith("x" * 10) and "90 more characters" in clipped


def test_listen_and_connect(tmp_path) -> None:
    path = str(tmp_path / "s")
    listener = wire.listen(path)
    client = wire.connect(path)
    server, _ = listener.accept()
    wire.send(client, "hello", role="base", pid=os.getpid())
    assert wire.Receiver(server).recv()["role"] == "base"
    for sock in (client, server, listener):
        sock.close()
