"""The server side of per-test coverage: workers' rings in, each test's and each run's lines out.

Server side, driven by the supervisor on its loop thread (no locks: nothing
else touches it). One ``CoverageFeed`` per supervisor when coverage is on:

- ``attach``: a worker's ring arrives (its memfd, with ``coverage_ring``) and
  is mapped for the life of the worker slot;
- ``fill``: on ``test_finished``, drain that worker's ring and put the test's
  lines on its ``TestResult`` (``coverage``: {path relative to the root:
  sorted 1-based lines}, ``coverage_partial``); the worker wrote them before
  sending the message, so they are there;
- ``outside``: lines run outside any test (collection in the collected layer,
  ``coverage_base``; hooks between tests, test id 0 in a ring), kept per
  collected-layer generation;
- ``release``: last drain when the slot ends, torn entries counted, unmapped.

``RunCoverage`` is what ``RunSummary.coverage`` holds; ``RunCoverageBuilder``
gathers it as the run records results (a result that ran but brought no
lines, a crash or a timeout, is partial with no lines). Executable and missed
lines need coverage.py's static analysis: see ``tach_ls.coverage_data``.
"""

from __future__ import annotations

import bisect
import dataclasses
import os
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import coverage_ring, ring_reader
from .coverage_ring import AGAIN, BASE, KINDS, MAP, MARKS, NAME_MASK, NAMED, SAME
from .results import NodeId, TestResult

RelPath = str
Lines = list[int]
MAP_CACHE = 64 << 20
"""Bytes of line maps ``CoverageFeed`` keeps with their lines (then it starts again)."""
Names = dict[int, tuple[int, "RelPath | None", Lines]]
"""A ring's named line sets (``coverage_ring.NAMED``): name -> (file id, its path, its sorted lines)."""
TakeMap = Callable[[int, int, int], "bytes | None"]
"""``ring_reader.RingReader.take_map``: (position, size, sum) -> the line map, or None."""


@dataclasses.dataclass
class RunCoverage:
    """One run's line coverage (1-based lines, paths relative to the workspace root)."""

    tests: dict[NodeId, dict[RelPath, Lines]]
    """Each test that ran: the lines it executed, per file."""
    partial: list[NodeId]
    """Tests whose lines may be incomplete (ring overflow, crash, timeout, torn entries): never trust them to exclude."""
    files: dict[RelPath, Lines]
    """Per file, every line executed in this run: by its tests, and outside them (imports at collection)."""
    notes: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class _Attached:
    reader: ring_reader.RingReader
    pid: int
    names: Names = dataclasses.field(default_factory=dict)
    """Every test that ran a named set again shares its list."""


class CoverageFeed:
    """The rings of live workers and the lines run outside tests (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = os.path.realpath(root)
        self.rings: dict[int, _Attached] = {}  # worker id -> its ring
        self.generation = 0
        self.outside: dict[RelPath, set[int]] = {}
        self.notes: list[str] = []
        self._rel: dict[str, RelPath | None] = {}
        self._map_lines: dict[bytes, Lines] = {}
        """Line maps -> their lines, across rings and runs: every worker and every run of the same tests sends
        the same maps, and listing a map's lines is most of what a new set costs here."""
        self._map_bytes = 0

    # -- messages --------------------------------------------------------------------

    def attach(self, worker: int, pid: int, fd: int) -> None:
        """Map a worker's ring (takes ownership of ``fd``)."""
        try:
            ring = coverage_ring.attach(fd)
        except coverage_ring.RingError as exc:
            self._note(f"worker {pid}: {exc}; its tests have no coverage")
            return
        old = self.rings.pop(worker, None)
        if old is not None:
            old.reader.ring.close()
        self.rings[worker] = _Attached(ring_reader.RingReader(ring), pid)

    def base(self, generation: int, files: dict[str, list[int]]) -> None:
        """Lines a collected layer ran outside tests; a newer generation replaces the older's."""
        if generation > self.generation:
            self.generation = generation
            self.outside.clear()
        if generation < self.generation:
            return
        for path, lines in files.items():
            rel = self.rel(path)
            if rel is not None and any(lines):
                self.outside.setdefault(rel, set()).update(line for line in lines if line)

    def fill(self, result: TestResult, worker: int, test_id: int | None) -> None:
        """Put the test's lines on ``result``, from its worker's ring."""
        attached = self.rings.get(worker)
        if attached is None or not test_id:
            result.coverage, result.coverage_partial = {}, True
            return
        reader = attached.reader
        hits = reader.take(test_id)
        self._keep_outside(reader)
        result.coverage, unknown = self.resolve_test(reader, hits, attached.names)
        result.coverage_partial = not hits.complete or unknown

    def resolve_test(
        self, reader: ring_reader.RingReader, hits: ring_reader.TestHits, names: Names
    ) -> tuple[dict[RelPath, Lines], bool]:
        """A test's lines from its worker's ring (``resolve``), the ring's named sets in ``names``; a ``SAME``
        test's are those of the test before it, which must be the last one resolved from this ring."""
        found: dict[RelPath, Lines]
        if hits.torn:
            found, unknown = {}, True
        elif hits.whole and len(hits.lines) == 1 and hits.lines[0] == SAME:
            test, found, unknown = reader.resolved
            if test != hits.test - 1 or found is None:
                found, unknown = {}, True
            else:
                found = dict(found)
        else:
            naming = names if hits.whole else None  # a name is learnt only from a test that arrived whole
            found, unknown = self.resolve(reader.files, hits.unique(), naming, names, reader.take_map)
        reader.resolved = (hits.test, found, unknown or not hits.complete)
        return found, unknown

    def release(self, worker: int) -> None:
        """The worker slot ended: last drain, count torn and dropped entries, unmap."""
        attached = self.rings.pop(worker, None)
        if attached is None:
            return
        reader = attached.reader
        torn = reader.finish()
        self._keep_outside(reader)
        if torn:
            self._note(f"worker {attached.pid}: {torn} coverage entries torn (killed mid-write) were dropped")
        if reader.overflow:
            self._note(
                f"worker {attached.pid}: its coverage ring was full, {reader.overflow} line hits dropped "
                "(those tests are marked partial)"
            )
        if reader.broken:
            self._note(f"worker {attached.pid}: its coverage ring was corrupted; its open tests are partial")
        reader.ring.close()

    def close(self) -> None:
        for worker in list(self.rings):
            self.rings.pop(worker).reader.ring.close()

    # -- helpers ---------------------------------------------------------------------

    def rel(self, path: str) -> RelPath | None:
        """A real path as the workspace-relative path results use (None outside the root)."""
        found = self._rel.get(path, "")
        if found != "":
            return found
        rel: RelPath | None = None
        if path.startswith(self.root + os.sep):
            rel = path[len(self.root) + 1 :].replace(os.sep, "/")
        self._rel[path] = rel
        return rel

    def resolve(
        self,
        files: dict[int, str],
        taken: tuple[array[int], array[int]],
        naming: Names | None = None,
        names: Names | None = None,
        maps: TakeMap | None = None,
    ) -> tuple[dict[RelPath, Lines], bool]:
        """{rel path: sorted lines} from (lines, file ids) file by file (ascending file ids), each once; True if
        some lines are unknown (a file id with no path, a set name never learnt, marks out of place).

        A file's lines followed by a ``NAMED`` mark are added to ``naming`` under that name (given only for a
        test whose entries all arrived); an ``AGAIN`` mark alone stands for the set ``names`` holds under its
        name, whose list is shared; a ``BASE`` mark first says the lines up to the ``NAMED`` one are toggled
        in the set it names (trusted only in a test whose entries all arrived: a toggled line lost would
        add a line the test never ran); a ``MAP`` group is a line map in the ring's map area, read with
        ``maps``. Lines are listed and sorted here, per new set: the worker's time is the test run's.
        """
        lines, file_ids = taken
        out: dict[RelPath, Lines] = {}
        unknown = False
        count = len(lines)
        start = 0
        while start < count:
            file_id, first = file_ids[start], lines[start]
            if first & MARKS == AGAIN:  # one mark standing for a whole set: the commonest group by far
                known = names.get(first & NAME_MASK) if names is not None else None
                if known is None or known[0] != file_id or (start + 1 < count and file_ids[start + 1] == file_id):
                    unknown = True
                elif known[1] is not None and known[2]:
                    out[known[1]] = known[2]
                start += 1
                continue
            end = bisect.bisect_left(file_ids, file_id + 1, start)
            if first & KINDS == MAP or lines[end - 1] & MARKS:
                found = self._named(files, file_id, lines[start:end], naming, names, maps)
                if found is None:
                    unknown = True
                elif found[2]:
                    out[found[1]] = found[2]  # type: ignore[index]
                start = end
                continue
            path = files.get(file_id)
            rel = self.rel(path) if path is not None else None
            if rel is None:
                unknown = True
            else:
                found_lines = self._sorted(lines[start:end])
                if found_lines:
                    out[rel] = found_lines
            start = end
        return out, unknown

    def _named(
        self,
        files: dict[int, str],
        file_id: int,
        group: array[int],
        naming: Names | None,
        names: Names | None,
        maps: TakeMap | None = None,
    ) -> tuple[int, RelPath | None, Lines] | None:
        """A file's new set: its lines (after a ``BASE`` mark, the lines toggled in that set; or a ``MAP``
        group) and, last, a ``NAMED`` mark (a map's may lack it): (file id, path, sorted lines), learnt into
        ``naming``; None when they cannot be trusted."""
        mark, base = group[-1], group[0]
        if base & KINDS == MAP:
            if len(group) == 3:
                mark = 0  # no name left to give it
            elif len(group) != 4 or mark & KINDS != NAMED:
                return None
        elif mark & KINDS != NAMED or (len(group) > 1 and group[-2] & MARKS):
            return None  # an AGAIN after lines, or two marks: not what a writer sends
        path = files.get(file_id)
        rel = self.rel(path) if path is not None else None
        if rel is None:
            return None
        if base & KINDS == MAP:
            data = maps(group[1], base & NAME_MASK, group[2]) if maps is not None else None
            if data is None:
                return None
            entry = (file_id, rel, self._lines_of_map(data))
        elif base & KINDS == BASE:
            known = names.get(base & NAME_MASK) if naming is not None and names is not None else None
            if known is None or known[0] != file_id or len(group) < 3:
                return None
            toggled = set(known[2])
            toggled.symmetric_difference_update(group[1:-1])
            entry = (file_id, rel, _source_lines(sorted(toggled)))
        else:
            entry = (file_id, rel, self._sorted(group[:-1]))
        if naming is not None and mark:
            naming[mark & NAME_MASK] = entry
        return entry

    def _lines_of_map(self, data: bytes) -> Lines:
        """The lines a map marks (shared with every set that had this map: never to be changed)."""
        found = self._map_lines.get(data)
        if found is None:
            found = _source_lines(coverage_ring.line_numbers(data))
            if self._map_bytes + len(data) > MAP_CACHE:
                self._map_lines.clear()
                self._map_bytes = 0
            self._map_lines[data] = found
            self._map_bytes += len(data)
        return found

    @staticmethod
    def _sorted(lines: array[int]) -> Lines:
        return _source_lines(sorted(lines.tolist()))

    def _keep_outside(self, reader: ring_reader.RingReader) -> None:
        if not reader.outside:
            return
        found, _ = self.resolve(reader.files, ring_reader.unpack(array("Q", sorted(reader.outside))))
        reader.outside.clear()
        for rel, lines in found.items():
            self.outside.setdefault(rel, set()).update(lines)

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


def _source_lines(lines: Lines) -> Lines:
    """Sorted lines without line 0, an empty module's lone instruction: not a source line (coverage.py drops it
    too)."""
    if lines and lines[0] == 0:
        del lines[0]
    return lines


class RunCoverageBuilder:
    """Gathers one run's ``RunCoverage`` from its results as they are recorded."""

    def __init__(self, feed: CoverageFeed) -> None:
        self.feed = feed
        self.tests: dict[NodeId, dict[RelPath, Lines]] = {}
        self.partial: list[NodeId] = []
        self.files: dict[RelPath, set[int]] = {}
        self.notes_before = len(feed.notes)
        self._added: dict[tuple[RelPath, int], Lines] = {}
        """The line lists already in ``files``, by file and id (tests that ran a named set share its list, and
        files with the same line map share one too: the id alone would skip the second file); holding them
        keeps an id from being reused during the run."""

    def add(self, result: TestResult) -> None:
        if result.coverage is None:
            if result.worker is None:
                return  # never ran (a collection error): nothing to say about its lines
            result.coverage, result.coverage_partial = {}, True  # crashed or timed out before reporting
        self.tests[result.nodeid] = result.coverage
        if result.coverage_partial:
            self.partial.append(result.nodeid)
        files, added = self.files, self._added
        for rel, lines in result.coverage.items():
            key = (rel, id(lines))
            if key in added:
                continue
            added[key] = lines
            found = files.get(rel)
            if found is None:
                files[rel] = set(lines)
            else:
                found.update(lines)

    def finish(self) -> RunCoverage:
        files = {rel: set(lines) for rel, lines in self.feed.outside.items()}
        for rel, lines in self.files.items():
            files.setdefault(rel, set()).update(lines)
        return RunCoverage(
            tests=dict(self.tests),
            partial=list(self.partial),
            files={rel: sorted(lines) for rel, lines in sorted(files.items())},
            notes=self.feed.notes[self.notes_before :],
        )


def wire_test_id(msg: dict[str, Any]) -> int | None:
    """The ring's test id of a ``test_finished`` message (the worker's position in its batch, from 1)."""
    value = (msg.get("result") or {}).get("coverage_id")
    return int(value) if value else None
