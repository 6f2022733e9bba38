"""Where a worker is in its batch, kept in a small file instead of sent as messages.

Standard library only: the worker writes it (zygote side), the supervisor
reads it (server side). A worker used to send a message when each test
started and at each of its phases, only so that a crash or a timeout could
say which test and which phase it hit. Each message woke the supervisor (and,
on two cores, took a core from a worker): three wake-ups per test that
nobody needed unless something went wrong. Now each test sends one message,
``test_finished``, and the worker overwrites one record in its ``.st`` file
at each phase (a ``pwrite`` of 36 bytes, no wake-up); the supervisor reads it
when a worker dies, when a timeout may have come, and never otherwise.

The record: magic ``TWS1``, the test's position in the batch (from 1), its
phase (1 setup, 2 call, 3 teardown, 4 done), when it started
(``time.monotonic()``, the same clock in every process), the ends of the
worker's stdout and stderr files when it started, and a CRC-32 of all that:
a record read in the middle of a write fails its CRC and is read again.
"""

from __future__ import annotations

import os
import struct
import time
import zlib
from dataclasses import dataclass

PHASES = ("", "setup", "call", "teardown", "done")
_BODY = struct.Struct("<4sIIdQQ")
_RECORD_SIZE = _BODY.size + 4
_MAGIC = b"TWS1"


@dataclass(frozen=True)
class WorkerStatus:
    """The worker's last record."""

    index: int
    """Position in its batch of the test it is in (from 1); 0 before its first test."""
    phase: str
    """setup, call, teardown, or done (between this test and the next)."""
    started: float
    """``time.monotonic()`` when the test started."""
    out_offset: int
    err_offset: int


class StatusWriter:
    """The worker's end: one open descriptor, one ``pwrite`` per phase."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self.index = 0
        self.started = 0.0
        self.out_offset = self.err_offset = 0

    def begin(self, index: int, out_offset: int, err_offset: int) -> None:
        self.index, self.started = index, time.monotonic()
        self.out_offset, self.err_offset = out_offset, err_offset
        self.phase("setup")

    def phase(self, name: str) -> None:
        body = _BODY.pack(_MAGIC, self.index, PHASES.index(name), self.started, self.out_offset, self.err_offset)
        os.pwrite(self.fd, body + zlib.crc32(body).to_bytes(4, "little"), 0)


def read(path: str, attempts: int = 5) -> WorkerStatus | None:
    """The worker's last record, or None (no file, nothing written yet, or never whole after ``attempts`` reads)."""
    for _ in range(attempts):
        try:
            with open(path, "rb") as handle:
                data = handle.read(_RECORD_SIZE)
        except OSError:
            return None
        if len(data) < _RECORD_SIZE:
            return None
        body = data[: _BODY.size]
        if zlib.crc32(body).to_bytes(4, "little") != data[_BODY.size :]:
            continue  # read while the worker wrote it
        magic, index, phase, started, out_offset, err_offset = _BODY.unpack(body)
        if magic != _MAGIC or phase >= len(PHASES):
            return None
        return WorkerStatus(index, PHASES[phase], started, out_offset, err_offset)
    return None
