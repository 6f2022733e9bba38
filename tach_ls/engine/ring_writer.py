"""The worker's end of a coverage ring: publishes file paths, writes each test's hits, names line sets.

Standard library only (it runs in the project's interpreter). The layout and
the meaning of every entry and mark are in ``coverage_ring``; the reader is
``ring_reader``.
"""

from __future__ import annotations

import os
import zlib
from array import array
from collections.abc import Callable, Sequence

from .coverage_ring import (
    AGAIN,
    BASE,
    COUNT_MASK,
    END,
    ENTRIES_AT,
    ENTRY,
    FILE_RECORD,
    GROUPED,
    MAP,
    MAP_READ_AT,
    NAME_MASK,
    NAMED,
    OVERFLOW_AT,
    PARTIAL,
    POSITION_MASK,
    READ_AT,
    SAME,
    TABLE_END_AT,
    WRITE_AT,
    FileId,
    LineNo,
    LineSet,
    Ring,
    TestId,
    encode,
    line_numbers,
)


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
            self._add_set(file_id, seen, name, previous, lines, files, fresh)
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
            self._add_set(file_id, part, names.get((file_id, part)), previous, lines, files, fresh)
        return self._close_sets(test, lines, files, partial, fresh, seen)

    def _add_set(
        self, file_id: FileId, seen: LineSet, name: int | None, previous: tuple[LineSet, int] | None,
        lines: array[int], files: array[int], fresh: list[tuple[FileId, LineSet]],
    ) -> None:
        """Add a file's set: a known one (``name``) as one ``AGAIN``; a set the reader does not know yet as a map,
        as the file's last set toggled, or as its lines, then named."""
        if name is not None:
            lines.append(AGAIN | name)
            files.append(file_id)
            self.last[file_id] = (seen, name)
            return
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
        """If the test ran what the test before it ran (that one written whole, and this one not partial), write
        one ``SAME`` entry and say how many entries were dropped; else None. The takes are compared whole, most
        often a map's bytes (``memcmp``). Parametrized tests, and a module's tests of one function, often run
        the very same lines: in Click's suite 43% of its tests."""
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
