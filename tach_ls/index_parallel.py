"""Index many files on two cores: fork one helper child for part of the work.

Only for one-shot command-line use (`tach-ls list`): the process is single
threaded there, so fork is safe. The child gets the larger half of the work
by bytes, sends back marshal-able results through a pipe and exits; any
failure of the child (crash, bad data) falls back to doing its share here,
so results never depend on the child working.
"""

from __future__ import annotations

import marshal
import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

MIN_BYTES_TO_SPLIT = 256 * 1024  # below this a fork costs more than it saves


def split_by_size(jobs: Sequence[T], size: Callable[[T], int]) -> tuple[list[int], list[int]]:
    """Greedy halves (indexes into jobs) balanced by size, biggest first."""
    order = sorted(range(len(jobs)), key=lambda i: -size(jobs[i]))
    mine: list[int] = []
    theirs: list[int] = []
    load = [0, 0]
    for i in order:
        side = 0 if load[0] <= load[1] else 1
        (mine if side == 0 else theirs).append(i)
        load[side] += size(jobs[i])
    return mine, theirs


def parallel_map(work: Callable[[T], Any], jobs: Sequence[T], size: Callable[[T], int], parallel: bool) -> list[Any]:
    """[work(job) for job in jobs], with part of it done in a forked child when worth it."""
    total = sum(size(j) for j in jobs)
    if not parallel or len(jobs) < 2 or total < MIN_BYTES_TO_SPLIT or (os.cpu_count() or 1) < 2:
        return [work(j) for j in jobs]
    mine, theirs = split_by_size(jobs, size)
    results: list[Any] = [None] * len(jobs)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the helper child: compute its share, send it, leave without cleanup handlers
        status = 1
        try:
            os.close(read_fd)
            blob = marshal.dumps([(i, work(jobs[i])) for i in theirs])
            view = memoryview(blob)
            while view:
                view = view[os.write(write_fd, view) :]
            status = 0
        finally:
            os._exit(status)
    os.close(write_fd)
    for i in mine:
        results[i] = work(jobs[i])
    chunks = []
    with os.fdopen(read_fd, "rb") as pipe:
        while chunk := pipe.read(1 << 20):
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    try:
        if status != 0:
            raise ValueError("helper child failed")
        for i, value in marshal.loads(b"".join(chunks)):
            results[i] = value
    except (ValueError, EOFError, TypeError):
        for i in theirs:
            results[i] = work(jobs[i])
    return results
