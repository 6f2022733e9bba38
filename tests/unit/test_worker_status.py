"""The worker's status record: what a crash or a timeout report reads instead of per-phase messages."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tach_ls.engine import worker_status


def test_the_last_phase_written_is_what_is_read(tmp_path: Path) -> None:
    path = str(tmp_path / "w1.st")
    assert worker_status.read(path) is None  # no file yet: the worker never got that far
    writer = worker_status.StatusWriter(path)
    assert worker_status.read(path) is None  # created, nothing written: before its first test
    before = time.monotonic()
    writer.begin(3, 120, 7)
    writer.phase("call")
    got = worker_status.read(path)
    assert got is not None and (got.index, got.phase, got.out_offset, got.err_offset) == (3, "call", 120, 7)
    assert before <= got.started <= time.monotonic()
    writer.phase("done")
    assert worker_status.read(path).phase == "done"  # type: ignore[union-attr]


def test_a_record_read_half_written_is_never_believed(tmp_path: Path) -> None:
    """Regression: a record read in the middle of a ``pwrite`` naming another test or a wild start time
    (which could kill a test early). Two arms: a whole record is read; one with a byte changed is not."""
    path = str(tmp_path / "w2.st")
    writer = worker_status.StatusWriter(path)
    writer.begin(2, 0, 0)
    data = Path(path).read_bytes()
    assert worker_status.read(path) is not None
    fd = os.open(path, os.O_WRONLY)
    os.pwrite(fd, bytes([data[4] ^ 0xFF]), 4)  # the test's position, torn
    os.close(fd)
    assert worker_status.read(path, attempts=2) is None
