"""The supervisor's end of a coverage ring: drains a worker's entries, groups them by test, reads line maps.

Standard library only. The layout and the integrity rules are in
``coverage_ring``, the writer in ``ring_writer``; this module reads what that
writer wrote.
"""

from __future__ import annotations

import os
import zlib
from array import array
from dataclasses import dataclass, field
from typing import Any

from .coverage_ring import (
    COUNT_MASK,
    END,
    ENTRIES_AT,
    ENTRY,
    FILE_RECORD,
    GROUPED,
    KINDS,
    MAP,
    MAP_READ_AT,
    OVERFLOW_AT,
    PARTIAL,
    POSITION_MASK,
    READ_AT,
    TABLE_END_AT,
    WRITE_AT,
    FileId,
    Hit,
    Ring,
    TestId,
    checks,
)


@dataclass
class TestHits:
    """What the reader knows of one test: its hits, and whether they are all there."""

    __test__ = False

    test: TestId = 0
    lines: array[int] = field(default_factory=lambda: array("I"))
    """The line field of each entry as it arrived (a line, or a mark); file by file and each once when ``grouped``."""
    files: array[int] = field(default_factory=lambda: array("I"))
    """The file id of each entry, parallel to ``lines``."""
    received: int = 0
    complete: bool = False
    """Every hit is here and the writer knew of no gap (what a consumer may trust to exclude a line)."""
    whole: bool = False
    """Every entry the writer wrote arrived intact (so the sets it named are exactly what it sent)."""
    ended: bool = False
    grouped: bool = False
    """The writer said its entries were grouped (``GROUPED``), and they all arrived (so in the writer's order)."""
    torn: bool = False
    """Some entry failed its check: what is left cannot be told apart (a map's position or sum, a line toggled
    in a named set, a line), so none of it is a line of the test (``CoverageFeed`` drops them all)."""

    @property
    def hits(self) -> array[int]:
        """Packed hits (``file id << 32 | line``), in arrival order."""
        return pack(self.lines, self.files)

    def unique(self) -> tuple[array[int], array[int]]:
        """(lines, file ids) file by file in ascending file id order, each once (lines within a file in any order).

        A test that did not arrive whole loses its line maps: their entries
        only mean something in the order they were written.
        """
        if self.grouped:
            return self.lines, self.files
        lines, files = self.lines, self.files
        maps = [at for at, line in enumerate(lines) if line & KINDS == MAP]
        if maps:
            drop = {at + step for at in maps for step in range(3) if at + step < len(lines) and files[at + step] == files[at]}
            keep = [at for at in range(len(lines)) if at not in drop]
            lines, files = array("I", [lines[at] for at in keep]), array("I", [files[at] for at in keep])
        return unpack(array("Q", sorted(set(pack(lines, files)))))


def pack(lines: array[int], files: array[int]) -> array[int]:
    words = array("I", bytes(8 * len(lines)))
    words[0::2] = lines
    words[1::2] = files
    packed = array("Q")
    packed.frombytes(words.tobytes())
    return packed


def unpack(packed: array[int]) -> tuple[array[int], array[int]]:
    words = array("I")
    words.frombytes(packed.tobytes())
    return words[0::2], words[1::2]


class RingReader:
    """The supervisor's end: drains entries and the file table, groups hits by test id."""

    def __init__(self, ring: Ring) -> None:
        self.ring = ring
        self.read = ring.load(READ_AT)
        self.table_pos = 0
        self.files: dict[FileId, str] = {}
        self.tests: dict[TestId, TestHits] = {}
        self.outside: set[Hit] = set()
        """Hits of test id 0: lines run outside any test."""
        self.torn = 0
        """Entries dropped because they were torn: a bad stamp, or written past the index by a writer that died."""
        self.broken = False
        """The header's indexes made no sense: nothing more is read, every open test is partial."""
        self.map_read = ring.load(MAP_READ_AT)
        self._torn_pending = False
        self.resolved: tuple[TestId, Any, bool] = (0, None, True)
        """The last test resolved from this ring, its lines and whether some were unknown (the consumer's, for
        a test that ran the same, ``SAME``)."""

    @property
    def overflow(self) -> int:
        return self.ring.load(OVERFLOW_AT)

    def drain(self) -> int:
        """Read what the writer published since the last drain; the number of entries read."""
        if self.broken:
            return 0
        ring = self.ring
        write = ring.load(WRITE_AT)
        self._read_table()  # after the index: every file its entries name was published before it
        count = write - self.read
        if count == 0:
            return 0
        if count < 0 or count > ring.capacity:
            self.broken = True
            return 0
        raw = self._take(self.read, count)
        self._group(raw, self.read, count)
        self.read = write
        ring.store(READ_AT, write)
        return count

    def take(self, test: TestId) -> TestHits:
        """Drain, then hand over (and forget) one test's hits; partial unless its end entry arrived whole."""
        self.drain()
        found = self.tests.pop(test, None)
        if found is None:
            return TestHits(test)
        found.complete = found.complete and found.ended and not self.broken
        found.whole = found.whole and found.ended and not self.broken
        return found

    def take_map(self, position: int, size: int, check: int) -> bytes | None:
        """A line map from the map area (``position`` modulo 2**32, as its entry says), its room freed for the
        writer; None if it is not there intact (its sum differs, or its room may have been written again)."""
        ring = self.ring
        start = self.map_read + ((position - self.map_read) & POSITION_MASK)
        if start + size - self.map_read > ring.maps_size or self.broken:
            return None  # before what was freed already, or past what the writer may write: not trustworthy
        at = start & (ring.maps_size - 1)
        first = min(size, ring.maps_size - at)
        data = bytes(ring.mm[ring.maps_at + at : ring.maps_at + at + first])
        if first < size:
            data += bytes(ring.mm[ring.maps_at : ring.maps_at + size - first])
        if zlib.adler32(data) != check:
            return None
        self.map_read = start + size
        ring.store(MAP_READ_AT, self.map_read)
        return data

    def finish(self) -> int:
        """Last drain once the writer is gone: count the slots it was killed in the middle of; returns torn."""
        self.drain()
        if self.broken:
            return self.torn
        ring = self.ring
        slot = self.read % ring.capacity
        torn = 0
        for step in range(ring.capacity):
            at = ENTRIES_AT + ((slot + step) % ring.capacity) * ENTRY
            if ring.mm[at : at + ENTRY] == bytes(ENTRY):
                break
            torn += 1
        self.torn += torn  # the test being written has no end entry: take() reports it partial
        return self.torn

    # -- internals -------------------------------------------------------------

    def _read_table(self) -> None:
        ring = self.ring
        end = ring.load(TABLE_END_AT)
        if end > ring.table_size:
            self.broken = True
            return
        pos = self.table_pos
        while pos + FILE_RECORD.size <= end:
            at = ring.table_at + pos
            file_id, length = FILE_RECORD.unpack_from(ring.mm, at)
            if pos + FILE_RECORD.size + length > end:
                self.broken = True
                return
            self.files[file_id] = os.fsdecode(bytes(ring.mm[at + FILE_RECORD.size : at + FILE_RECORD.size + length]))
            pos += -(-(FILE_RECORD.size + length) // 8) * 8
        self.table_pos = pos

    def _take(self, start: int, count: int) -> bytes:
        """The bytes of ``count`` entries from ``start``, zeroing their slots (see ``finish``)."""
        ring = self.ring
        slot = start % ring.capacity
        first = min(count, ring.capacity - slot)
        at = ENTRIES_AT + slot * ENTRY
        raw = bytes(ring.mm[at : at + first * ENTRY])
        ring.mm[at : at + first * ENTRY] = bytes(first * ENTRY)
        if first < count:
            rest = (count - first) * ENTRY
            raw += bytes(ring.mm[ENTRIES_AT : ENTRIES_AT + rest])
            ring.mm[ENTRIES_AT : ENTRIES_AT + rest] = bytes(rest)
        return raw

    def _group(self, raw: bytes, start: int, count: int) -> None:
        words = array("I")
        words.frombytes(raw)
        lines, files, tests = words[0::4], words[1::4], words[2::4]
        test = tests[-1]
        one = files[-1] == END and files.count(END) == 1 and tests.count(test) == count  # one test, ended: most drains
        if words[3::4] != checks(lines, files, test if one else tests, start, self.ring.capacity):
            self._group_slowly(words, start, count)
            return
        if one:
            self._add(test, lines[:-1], files[:-1], count - 1)
            self._end(test, lines[-1], torn=False)
            return
        # A file id missing from the table is not checked here: resolving the hits to paths
        # (CoverageFeed.resolve) finds it and marks the test partial.
        begin = 0
        for end in _positions(files, END):
            test = tests[end]
            if tests[begin:end] == array("I", [test]) * (end - begin):
                self._add(test, lines[begin:end], files[begin:end], end - begin)
            else:
                self._add_each(lines, files, tests, begin, end)
            self._end(test, lines[end], torn=False)
            begin = end + 1
        if begin < count:  # entries whose end entry was dropped (the ring was full)
            self._add_each(lines, files, tests, begin, count)

    def _add_each(self, lines: array[int], files: array[int], tests: array[int], begin: int, end: int) -> None:
        """Entries of several tests mixed up (an end entry dropped): each to the test it names."""
        for index in range(begin, end):
            self._add(tests[index], lines[index : index + 1], files[index : index + 1], 1)


    def _group_slowly(self, words: array[int], start: int, count: int) -> None:
        """Some entries fail their check: drop them, and mark the test each belonged to partial.

        A bad entry belongs to the test whose end entry comes next; nothing in
        the bad entry itself (its test id included) can be trusted.
        """
        lines, files, tests = words[0::4], words[1::4], words[2::4]
        good = checks(lines, files, tests, start, self.ring.capacity)
        torn = False
        for index in range(count):
            if words[4 * index + 3] != good[index]:
                self.torn += 1
                torn = True
                continue
            if files[index] == END:
                self._end(tests[index], lines[index], torn)
                torn = False
                continue
            self._add(tests[index], lines[index : index + 1], files[index : index + 1], 1)
        if torn:  # the bad entries belong to a test whose end entry is not here yet
            self._torn_pending = True

    def _add(self, test: TestId, lines: array[int], files: array[int], count: int) -> None:
        if test == 0:
            self.outside.update(pack(lines, files))
            return
        entry = self.tests.get(test)
        if entry is None:
            entry = self.tests[test] = TestHits(test, complete=True)
        entry.lines.extend(lines)
        entry.files.extend(files)
        entry.received += count

    def _end(self, test: TestId, total: int, torn: bool) -> None:
        torn, self._torn_pending = torn or self._torn_pending, False
        if test == 0:
            return
        entry = self.tests.get(test)
        if entry is None:
            entry = self.tests[test] = TestHits(test, complete=True)
        entry.torn = entry.torn or torn
        entry.whole = entry.received == total & COUNT_MASK and not torn
        entry.complete = entry.complete and entry.whole and not total & PARTIAL
        entry.grouped = bool(total & GROUPED) and entry.whole
        entry.ended = True


def _positions(column: array[int], value: int) -> list[int]:
    """The indexes of ``value`` in a u32 column, at C speed (``array.index`` makes an int object per item)."""
    raw, needle = column.tobytes(), value.to_bytes(4, "little")
    found: list[int] = []
    at = raw.find(needle)
    while at >= 0:
        if at % 4:  # straddles two items
            at = raw.find(needle, at + 1)
            continue
        found.append(at // 4)
        at = raw.find(needle, at + 4)
    return found
