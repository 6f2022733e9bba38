"""Shared-memory ring buffers that carry line hits from a worker to the supervisor.

Standard library only: the writer (``ring_writer``) runs in the project's
interpreter (zygote side), the reader (``ring_reader``) in the supervisor.
This module holds the layout, the ring itself and the entry encoding both
sides check.

Who creates and who maps it. The collected layer creates one ring per child,
right before it forks the child (``create``: a ``memfd`` with a shared
mapping), so the child inherits the mapping and the parent closes its copy at
once. The worker hands the memfd to the supervisor with ``SCM_RIGHTS``,
attached to its ``coverage_ring`` message (``wire.send_fds``), and closes its
descriptor; the supervisor maps the same pages (``attach``) and drains them
on its loop while the worker goes on. Spawn mode's batch process creates its
own ring and hands it over the same way. The memory is freed when the last
side unmaps it. Passing the descriptor works across PID and mount namespaces
(a path or ``/proc/PID/fd`` would not).

Layout (little-endian; each header field the two sides write on its own
64-byte cache line, so the writer's stores never bounce the reader's line)::

    0    magic "TCR1", version, entry size, capacity (entries), table offset, table size, map area offset and size
    64   write index (u64): entries published by the writer, counted from 0, never wrapped
    128  read index (u64): entries consumed by the reader
    192  overflow (u64): entries the writer dropped because the ring was full
    256  table end (u64): bytes of the file table published by the writer
    320  map read index (u64): bytes of the map area the reader is done with, counted from 0, never wrapped
    384  entries: capacity x 16 bytes, entry i at slot i % capacity:
             u32 line, u32 file id, u32 test id, u32 check (see ``checks``)
    ...  file table: (u32 file id, u32 length, UTF-8 path) records padded to 8 bytes
    ...  map area (a power of two bytes): line maps, byte i of a map set when line i ran (see ``MAP``)

A test's hits are written in one go at the end of the test (``write_test``):
its line entries, then one end entry (file id ``END``, line = how many hits
the test had, with flag bits: ``PARTIAL`` when the writer knows they are
incomplete, ``GROUPED`` when the entries come file by file in ascending file
id order, each line once, so the reader can take them as they are instead of
sorting and de-duplicating them; lines within a file may come in any order). The
entries are copied first and the write index is published after, so the
reader never reads a slot before it is whole. Test boundaries are therefore
in the data itself: an end entry closes its test id; test id 0 collects lines
run outside any test (collection in spawn mode, hooks between tests).

Line maps (``write_sets``, the probes' sets): a file's new set goes into the
map area as it was taken, a byte per line, with three entries: ``MAP |
length``, its position in the area (the writer's map index, modulo 2**32)
and its ``zlib.adler32``; the supervisor turns it into line numbers. So the
worker, whose time is the test run's, copies bytes instead of listing the
lines. The reader checks the sum when it copies the map out, then lets the
writer reuse the room (map read index); a map whose room the writer has not
got is sent as line entries instead.

Named line sets (``write_sets``): most tests of a batch run the same lines
of a file as an earlier test did (Click's suite: 71% of its line hits, in
batches of 250 tests; Flask's: 62%). The first time a file's exact set of
lines is written, its line entries are followed by a ``NAMED`` entry (line
field ``NAMED | name``, same file id); a later test that ran that same set
writes one ``AGAIN`` entry (``AGAIN | name``) instead of its lines. Names
count from 1 per ring. A new set that differs from the file's last one in
fewer lines than it has (a test module's next test: its own lines change,
its module's do not) starts with a ``BASE`` entry (both flags, that set's
name) and sends only the lines to toggle in it; the reader trusts it only
in a test whose entries all arrived, since a lost toggle could add a line.
A test whose take is exactly the test before it's (consecutive test ids,
that one written whole) is one ``SAME`` entry: the reader gives it the lines
it resolved for that test, or makes it partial with none if it has not got
them whole. The writer forgets the names of a test it could not write whole
(the ring was full); the reader keeps a name only from a test whose entries all
arrived (``ring_reader.TestHits.whole``), so an ``AGAIN`` or ``BASE`` it
cannot resolve makes that test partial, never wrong. Line numbers stay
below ``AGAIN``, so a line entry with either flag is a mark, not a line.

Integrity, so that coverage is incomplete at worst and never wrong:

- every entry carries a check word: a stamp derived from its absolute index
  (the lap of the ring it was written in, ``index // capacity``, so a slot
  holds a different stamp on every pass) XOR its three fields; an entry
  inside the published range that fails it (a torn or stale slot, a store
  reordered past the index on a weakly ordered CPU) is dropped and the test
  it belongs to is marked partial;
- the reader zeroes the slots it consumed, so after the writer died
  (``finish``) any non-zero slot past the write index is a record the writer
  was killed in the middle of: it is counted in ``torn`` and dropped, and its
  test, which has no end entry, is partial;
- a test with an entry that failed its check keeps no line at all (its
  remaining entries cannot be told apart: a map's position or sum, a line
  toggled in a named set, a line) and is partial;
- a full ring drops entries and counts them in the overflow field; the end
  entry says how many hits the test had, so a short count or a missing end
  entry makes the test partial (and so does a file id missing from the
  table, once the server resolves ids to paths).
"""

from __future__ import annotations

import itertools
import mmap
import operator
import os
import struct
from array import array

MAGIC = 0x31524354  # b"TCR1"
VERSION = 5
CACHE_LINE = 64
ENTRY = 16
WRITE_AT = 64
READ_AT = 128
OVERFLOW_AT = 192
TABLE_END_AT = 256
MAP_READ_AT = 320
ENTRIES_AT = 384
END = 0xFFFFFFFF
"""File id of a test's end entry."""
PARTIAL = 0x80000000
"""Flag in an end entry's line field: the writer knows the test's hits are incomplete."""
GROUPED = 0x40000000
"""Flag in an end entry's line field: the test's entries come file by file (ascending file ids), each hit once."""
COUNT_MASK = GROUPED - 1
"""The hit count in an end entry's line field."""
NAMED = 0x80000000
"""Flag in a line entry's line field: the file's lines before it in this test are the set ``line & NAME_MASK``."""
AGAIN = 0x40000000
"""Flag in a line entry's line field: this test ran the file's named set ``line & NAME_MASK`` again."""
BASE = NAMED | AGAIN
"""Both flags, first in a file's new named set: the set is the named set ``line & NAME_MASK`` with the lines
that follow (up to the ``NAMED`` entry) toggled: added where it lacked them, removed where it had them."""
MAP = NAMED | AGAIN | 1 << 29
"""First of a new set's three entries when it travels as a line map: ``MAP | length``, then the map's position
in the map area, then its ``zlib.adler32`` (line fields; all three carry the file's id)."""
SAME = AGAIN | 1 << 29
"""A test's only hit when it ran exactly what the test before it in this ring ran, and that one was written
whole: the reader gives it that test's lines (file id 0)."""
MARKS = NAMED | AGAIN
KINDS = MAP
"""``line & KINDS`` tells a mark's kind: ``NAMED``, ``AGAIN``, ``BASE`` or ``MAP``; 0 for a line."""
NAME_MASK = (1 << 29) - 1
STAMP_MODULO = 0xFFFFFFFF
DEFAULT_CAPACITY = 1 << 18
"""Entries per ring (4 MiB); a test needs one per distinct line it ran."""
DEFAULT_TABLE = 4 << 20
"""Bytes for the file table (the memfd is sparse: untouched pages cost nothing)."""
DEFAULT_MAPS = 4 << 20
"""Bytes for line maps (a power of two; a test's new sets take a byte per line of their files)."""
POSITION_MASK = 0xFFFFFFFF

_HEADER = struct.Struct("<IIIIQQQQQ")
_U64 = struct.Struct("<Q")
FILE_RECORD = struct.Struct("<II")

FileId = int
TestId = int
LineNo = int
Hit = int
"""A line of a file packed as ``file_id << 32 | line`` (what one entry's first 8 bytes hold)."""
LineSet = frozenset[LineNo] | bytes
"""A file's lines run by a test: the numbers, or a map whose byte i is non-zero when line i ran."""


def line_numbers(lines: LineSet) -> list[LineNo]:
    """The line numbers in a ``LineSet`` (a map's in ascending order)."""
    if type(lines) is bytes:
        # Where the 1s are, at C speed: the runs of 0s between them, each one's length plus one, summed.
        gaps = lines.split(b"\x01")
        del gaps[-1]
        return list(map(operator.add, itertools.accumulate(map(len, gaps)), itertools.count()))
    return list(lines)


class RingError(RuntimeError):
    """A descriptor that does not hold a ring of this version."""


class Ring:
    """One mapping of a ring's memory (both sides have their own)."""

    def __init__(self, fd: int, mm: mmap.mmap) -> None:
        self.fd = fd
        self.mm = mm
        magic, version, entry, _, capacity, table_at, table_size, maps_at, maps_size = _HEADER.unpack_from(mm, 0)
        if magic != MAGIC or version != VERSION or entry != ENTRY:
            raise RingError(f"not a tach-ls coverage ring (magic {magic:#x}, version {version})")
        if (
            table_at < ENTRIES_AT + capacity * ENTRY
            or maps_at < table_at + table_size
            or maps_at + maps_size > len(mm)
            or maps_size & (maps_size - 1)
            or maps_size > 1 << 30
        ):
            raise RingError("coverage ring header does not fit its mapping")
        self.capacity = capacity
        self.table_at = table_at
        self.table_size = table_size
        self.maps_at = maps_at
        self.maps_size = maps_size
        # The indexes are read and written as whole aligned 8-byte words (one load, one store):
        # struct's little-endian formats go byte by byte and another process could see half a store.
        self._words = memoryview(mm).cast("B").cast("Q")

    def load(self, offset: int) -> int:
        return int(self._words[offset // 8])

    def store(self, offset: int, value: int) -> None:
        self._words[offset // 8] = value

    def close_fd(self) -> None:
        """Close the descriptor, keep the mapping (the worker, once the supervisor has it)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def close(self) -> None:
        self.close_fd()
        self._words.release()
        self.mm.close()


def create(capacity: int = DEFAULT_CAPACITY, table_bytes: int = DEFAULT_TABLE, map_bytes: int = DEFAULT_MAPS) -> Ring:
    """A new zeroed ring in a memfd (done before the fork, so the child inherits the mapping)."""
    if map_bytes & (map_bytes - 1) or map_bytes > 1 << 30:
        raise ValueError(f"map area of {map_bytes} bytes: a power of two up to 1 GiB")
    table_at = ENTRIES_AT + capacity * ENTRY
    maps_at = -(-(table_at + table_bytes) // mmap.PAGESIZE) * mmap.PAGESIZE
    size = -(-(maps_at + map_bytes) // mmap.PAGESIZE) * mmap.PAGESIZE
    fd = os.memfd_create("tach-ls-coverage", os.MFD_CLOEXEC)
    try:
        os.ftruncate(fd, size)
        mm = mmap.mmap(fd, size)
    except BaseException:
        os.close(fd)
        raise
    _HEADER.pack_into(mm, 0, MAGIC, VERSION, ENTRY, 0, capacity, table_at, maps_at - table_at, maps_at, map_bytes)
    return Ring(fd, mm)


def attach(fd: int) -> Ring:
    """Map a ring received from a worker (takes ownership of ``fd``)."""
    try:
        mm = mmap.mmap(fd, 0)
        return Ring(fd, mm)
    except (OSError, ValueError, struct.error) as exc:
        os.close(fd)
        raise RingError(f"cannot map the coverage ring: {exc}") from exc


def stamps(start: int, count: int, capacity: int) -> array[int]:
    """The stamps of entries ``start .. start + count - 1``: their lap ``% (2**32 - 1) + 1``, never 0."""
    lap = start // capacity
    if (start + count - 1) // capacity == lap:  # nearly always: one lap
        return array("I", [lap % STAMP_MODULO + 1]) * count
    out = array("I")
    index = start
    while count > 0:
        lap = index // capacity
        run = min(count, (lap + 1) * capacity - index)
        out.extend(array("I", [lap % STAMP_MODULO + 1]) * run)
        index += run
        count -= run
    return out


def checks(
    lines: array[int], files: array[int], tests: array[int] | TestId, start: int, capacity: int
) -> array[int]:
    """The check word of each entry: its stamp XOR its line, file id and test id (``tests``: one id for all).

    Computed column-wise with big-integer XOR, which runs at C speed: an entry
    seen with any field not yet (or no longer) written fails its check.
    """
    count = len(lines)
    lap = start // capacity
    if isinstance(tests, int) and (start + count - 1) // capacity == lap:  # nearly always: one word for all
        mixed = _repeated((lap % STAMP_MODULO + 1) ^ tests, count)
    else:
        mixed = int.from_bytes(stamps(start, count, capacity), "little")
        mixed ^= _repeated(tests, count) if isinstance(tests, int) else int.from_bytes(tests, "little")
    value = int.from_bytes(lines, "little") ^ int.from_bytes(files, "little") ^ mixed
    out = array("I")
    out.frombytes(value.to_bytes(4 * count, "little"))
    return out


def _repeated(word: int, count: int) -> int:
    """``count`` u32 words of ``word``, as one little-endian integer."""
    return int.from_bytes(word.to_bytes(4, "little") * count, "little")


def encode(lines: array[int], files: array[int], test: TestId, start: int, capacity: int) -> array[int]:
    """Entries for parallel arrays of lines and file ids (C speed: no Python loop per entry)."""
    count = len(lines)
    out = array("I", bytes(ENTRY * count))
    out[0::4] = lines
    out[1::4] = files
    out[2::4] = array("I", [test]) * count
    out[3::4] = checks(lines, files, test, start, capacity)
    return out
