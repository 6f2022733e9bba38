"""Shared-memory ring buffers that carry line hits from a worker to the supervisor.

Standard library only: the writer runs in the project's interpreter (zygote
side), the reader (``ring_reader``) in the supervisor. This module holds the
layout, the ring itself and its writer.

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
import zlib
from array import array
from collections.abc import Callable, Sequence

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


class RingWriter:
    """The worker's end: publishes file paths and each test's hits."""

    def __init__(self, ring: Ring) -> None:
        self.ring = ring
        self.write = ring.load(WRITE_AT)
        self.read = ring.load(READ_AT)
        """The reader's index as last loaded: it only grows, so room counted from it is never more than there is.
        The reader's lines are loaded only when that room runs short (each load takes its line from the other
        process's cache)."""
        self.table_pos = ring.load(TABLE_END_AT)
        self.files_published = 0
        self.table_full = False
        self.names: dict[tuple[FileId, LineSet], int] = {}
        """(file id, lines) -> the name the reader knows that set by."""
        self.named = 0
        self.last: dict[FileId, tuple[LineSet, int]] = {}
        """File id -> the set its last test ran, and that set's name."""
        self.map_write = 0
        """Bytes written to the map area, counted from 0, never wrapped."""
        self.maps_read = 0
        """The reader's map index as last loaded (as ``read``)."""
        self.previous: tuple[TestId, object] = (0, None)
        """The last test written whole, and what it ran (its take): a test that ran the same is one ``SAME``."""

    def publish_files(self, paths: Sequence[str]) -> None:
        """Add ``paths[i]`` as file id ``i`` for every id not published yet."""
        ring = self.ring
        pos = self.table_pos
        while self.files_published < len(paths) and not self.table_full:
            data = os.fsencode(paths[self.files_published])
            size = -(-(FILE_RECORD.size + len(data)) // 8) * 8
            if pos + size > ring.table_size:
                self.table_full = True  # hits of later files are dropped and their tests marked partial
                break
            at = ring.table_at + pos
            FILE_RECORD.pack_into(ring.mm, at, self.files_published, len(data))
            ring.mm[at + FILE_RECORD.size : at + FILE_RECORD.size + len(data)] = data
            pos += size
            self.files_published += 1
        if pos != self.table_pos:
            self.table_pos = pos
            ring.store(TABLE_END_AT, pos)

    def write_test(
        self, test: TestId, lines: array[int], files: array[int], partial: bool = False, grouped: bool = False
    ) -> int:
        """Write a test's hits and its end entry; the number of entries dropped for lack of room. The end entry
        is appended to ``lines`` and ``files``.

        ``grouped``: the caller promises the hits come file by file, ascending file ids, each once (``GROUPED``).
        """
        ring = self.ring
        count = len(lines)
        free = ring.capacity - (self.write - self.read)
        if free <= count:
            self.read = ring.load(READ_AT)
            free = ring.capacity - (self.write - self.read)
        partial = partial or self.table_full
        if free < 1:
            self._overflow(count + 1)
            return count + 1
        keep = min(count, free - 1)
        if keep < count:
            lines, files, partial = lines[:keep], files[:keep], True
            self._overflow(count - keep)
        total = min(count, COUNT_MASK) | (PARTIAL if partial else 0) | (GROUPED if grouped else 0)
        lines.append(total)  # the end entry: one encode for all
        files.append(END)
        self._copy(encode(lines, files, test, self.write, ring.capacity))
        self.write += keep + 1
        ring.store(WRITE_AT, self.write)  # published after the copy: the reader never sees half an entry
        return int(count - keep)

    def write_sets(self, test: TestId, taken: Sequence[tuple[FileId, LineSet]], partial: bool = False) -> int:
        """Write a test's lines, file by file (ascending file ids), naming each new set and referring to known
        ones (see the module docstring); the number of entries dropped for lack of room. Test id 0 (lines run
        outside any test) neither names nor refers: the reader learns names from tests only."""
        lines, files = array("I"), array("I")
        if not test:
            for file_id, seen in taken:
                found = line_numbers(seen)
                lines.fromlist(found)
                files.extend(array("I", [file_id]) * len(found))
            return self.write_test(test, lines, files, partial, grouped=True)
        same = self._same(test, taken, partial)
        if same is not None:
            return same
        names, last = self.names, self.last
        fresh: list[tuple[FileId, LineSet]] = []
        for key in taken:
            file_id, seen = key
            previous = last.get(file_id)
            if previous is not None and previous[0] == seen:  # as the file's last test ran: no hashing
                name: int | None = previous[1]
            else:
                name = names.get(key)
            if name is None:
                self._new_set(file_id, seen, previous, lines, files, fresh)
            else:
                lines.append(AGAIN | name)
                files.append(file_id)
                last[file_id] = (seen, name)
        return self._close_sets(test, lines, files, partial, fresh, list(taken))

    def write_map(
        self, test: TestId, seen: bytes, spans: Callable[[bytes], Sequence[tuple[FileId, int, int]]],
        partial: bool = False,
    ) -> int:
        """``write_sets`` of a test whose lines are spans of one map (``ProbeBackend.take_whole``; ``spans``
        lists each file's: (file id, start, end)): a span the same as its file's last set is compared in place
        and never copied out; only new sets are."""
        if not test:
            return self.write_sets(test, [(file_id, seen[start:end]) for file_id, start, end in spans(seen)], partial)
        same = self._same(test, seen, partial)
        if same is not None:
            return same
        lines, files = array("I"), array("I")
        names, last = self.names, self.last
        fresh: list[tuple[FileId, LineSet]] = []
        for file_id, start, end in spans(seen):
            previous = last.get(file_id)
            if (
                previous is not None
                and len(previous[0]) == end - start
                and seen.startswith(previous[0], start)  # type: ignore[arg-type]  # a map's last set is a map
            ):
                lines.append(AGAIN | previous[1])
                files.append(file_id)
                continue
            part = seen[start:end]
            name = names.get((file_id, part))
            if name is None:
                self._new_set(file_id, part, previous, lines, files, fresh)
            else:
                lines.append(AGAIN | name)
                files.append(file_id)
                last[file_id] = (part, name)
        return self._close_sets(test, lines, files, partial, fresh, seen)

    def _new_set(
        self, file_id: FileId, seen: LineSet, previous: tuple[LineSet, int] | None, lines: array[int], files: array[int],
        fresh: list[tuple[FileId, LineSet]],
    ) -> None:
        """Add a set the reader does not know yet: as a map, as the file's last set toggled, or as its lines; named."""
        before = len(lines)
        naming = self.named < NAME_MASK
        if type(seen) is bytes and self._has_room(len(seen)):
            lines.extend((MAP | len(seen), self._put_map(seen), zlib.adler32(seen)))
        else:
            changed = _changed(previous[0], seen) if previous is not None and naming else None
            if changed is not None:  # the file's last set, a few lines toggled: most often, a test module's
                lines.append(BASE | previous[1])  # type: ignore[index]
                lines.fromlist(changed)
            else:
                lines.fromlist(line_numbers(seen))
        if naming:
            self.named += 1
            self.names[(file_id, seen)] = self.named
            self.last[file_id] = (seen, self.named)
            fresh.append((file_id, seen))
            lines.append(NAMED | self.named)
        files.extend(array("I", [file_id]) * (len(lines) - before))

    def _same(self, test: TestId, ran: object, partial: bool) -> int | None:
        """Write one ``SAME`` entry (and say how many entries were dropped) if the test ran what the test before it ran (written whole, as this one
        must be): a test's take compared whole, most often a map's bytes (``memcmp``). Parametrized tests, and
        a module's tests of one function, often run the very same lines; in Click's suite 43% of its tests."""
        if partial or self.table_full or self.previous[0] != test - 1 or self.previous[1] != ran:
            return None
        dropped = self.write_test(test, array("I", [SAME]), array("I", [0]), grouped=True)
        self.previous = (0, None) if dropped else (test, ran)
        return dropped

    def _close_sets(
        self, test: TestId, lines: array[int], files: array[int], partial: bool, fresh: list[tuple[FileId, LineSet]],
        ran: object,
    ) -> int:
        dropped = self.write_test(test, lines, files, partial, grouped=True)
        self.previous = (0, None) if dropped or partial or self.table_full else (test, ran)  # what the reader has whole
        if dropped:  # the reader keeps no name from a test that is not whole
            for key in fresh:
                del self.names[key]
                self.last.pop(key[0], None)
        return dropped

    def _has_room(self, size: int) -> bool:
        """Room in the map area for a map of ``size`` bytes (the reader frees it as it copies maps out)."""
        if size > self.ring.maps_size - (self.map_write - self.maps_read):
            self.maps_read = self.ring.load(MAP_READ_AT)
        return size <= self.ring.maps_size - (self.map_write - self.maps_read) and size < 1 << 29

    def _put_map(self, data: bytes) -> int:
        """Copy a line map into the map area; its position there, modulo 2**32 (what its entry says)."""
        ring = self.ring
        position = self.map_write
        at = position & (ring.maps_size - 1)
        first = min(len(data), ring.maps_size - at)
        ring.mm[ring.maps_at + at : ring.maps_at + at + first] = data[:first]
        if first < len(data):
            ring.mm[ring.maps_at : ring.maps_at + len(data) - first] = data[first:]
        self.map_write += len(data)
        return position & POSITION_MASK

    def _copy(self, entries: array[int]) -> None:
        ring = self.ring
        slot = self.write % ring.capacity
        size = len(entries) * 4
        at = ENTRIES_AT + slot * ENTRY
        first = (ring.capacity - slot) * ENTRY
        if size <= first:  # nearly always: no wrap
            ring.mm[at : at + size] = entries
            return
        data = memoryview(entries).cast("B")
        ring.mm[at : at + first] = data[:first]
        ring.mm[ENTRIES_AT : ENTRIES_AT + size - first] = data[first:]

    def _overflow(self, dropped: int) -> None:
        self.ring.store(OVERFLOW_AT, self.ring.load(OVERFLOW_AT) + dropped)


def _changed(before: LineSet, after: LineSet) -> list[LineNo] | None:
    """The lines that differ between two sets of one file, when there are fewer of them than ``after`` has."""
    if type(before) is bytes and type(after) is bytes:
        if len(before) != len(after):
            return None
        diff = (int.from_bytes(before, "little") ^ int.from_bytes(after, "little")).to_bytes(len(after), "little")
        if diff.count(1) >= after.count(1):
            return None
        return line_numbers(diff)
    if type(before) is frozenset and type(after) is frozenset:
        toggled = before.symmetric_difference(after)
        return list(toggled) if len(toggled) < len(after) else None
    return None
