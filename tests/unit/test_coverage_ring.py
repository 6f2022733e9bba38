"""The coverage ring: wraparound, overflow, a writer and a reader in two processes, a writer killed mid-record.

Each contract is pinned by two arms (the case that must hold and the case
next to it), and each docstring names the regression it catches. Every
test's lines here are a pure function of its test id, so any entry read
from the wrong slot, test or lap shows as a wrong set, not just a count.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from array import array
from pathlib import Path
from typing import Any

import pytest

from tach_ls.engine import coverage_ring as cr
from tach_ls.engine import ring_reader, ring_writer
from tach_ls.engine import coverage_feed
from tach_ls.engine.coverage_feed import CoverageFeed

REPO = Path(__file__).resolve().parents[2]
FILES = [f"/w/f{i}.py" for i in range(7)]


def lines_of(test: int) -> list[tuple[int, int]]:
    """The (file id, line) pairs test ``test`` hits: deterministic, different per test."""
    return [((test + i) % len(FILES), 10 * test + i) for i in range(test % 9 + 1)]


def packed(test: int) -> set[int]:
    return {f << 32 | line for f, line in lines_of(test)}


def write(writer: ring_writer.RingWriter, test: int) -> int:
    pairs = lines_of(test)
    return writer.write_test(test, array("I", [p[1] for p in pairs]), array("I", [p[0] for p in pairs]))


def new_ring(capacity: int, map_bytes: int = 4096) -> tuple[ring_writer.RingWriter, ring_reader.RingReader]:
    ring = cr.create(capacity, table_bytes=4096, map_bytes=map_bytes)
    writer = ring_writer.RingWriter(ring)
    writer.publish_files(FILES)
    return writer, ring_reader.RingReader(ring)


@pytest.mark.parametrize("capacity", [1 << 12, 16], ids=["no-wrap", "wraps"])
def test_wraparound(capacity: int) -> None:
    """Regression: an entry split across the end of the ring, or a slot read from the previous lap.

    Arms: a ring large enough never to wrap, and one of 16 entries that wraps
    every two tests; both must give every test exactly its own lines.
    """
    writer, reader = new_ring(capacity)
    for test in range(1, 61):
        assert write(writer, test) == 0
        got = reader.take(test)
        assert got.complete and set(got.hits) == packed(test), test
    wrapped = reader.read > capacity
    assert wrapped == (capacity == 16)
    assert reader.overflow == 0 and reader.torn == 0 and reader.finish() == 0


@pytest.mark.parametrize("drain_each", [True, False], ids=["reader-keeps-up", "reader-lags"])
def test_overflow_is_counted_and_marks_partial(drain_each: bool) -> None:
    """Regression: a full ring overwriting unread entries, or dropping them while the test looks complete.

    Arms: a reader that drains after every test (nothing dropped, all
    complete) and one that drains only at the end (the tests that did not
    fit are partial, the count of dropped hits is exact, and the lines that
    did arrive are still right).
    """
    writer, reader = new_ring(32)
    dropped = 0
    results = {}
    for test in range(1, 13):
        dropped += write(writer, test)
        if drain_each:
            results[test] = reader.take(test)
    if not drain_each:
        results = {test: reader.take(test) for test in range(1, 13)}
    assert reader.overflow == dropped
    if drain_each:
        assert dropped == 0 and all(r.complete and set(r.hits) == packed(t) for t, r in results.items())
        return
    assert dropped > 0
    partial = [t for t, r in results.items() if not r.complete]
    assert partial, "a lagging reader must see partial tests"
    for test, got in results.items():
        assert set(got.hits) <= packed(test)
        assert got.complete == (set(got.hits) == packed(test) and test not in partial)
    assert set(reader.take(12).hits) == set()  # taken once: forgotten


def test_a_test_whose_end_entry_was_dropped_is_partial() -> None:
    """Regression: a ring so full that even the end entry is lost, and the test's hits counted as whole."""
    writer, reader = new_ring(8)
    assert write(writer, 6) == 0  # 8 entries: 7 hits + the end entry, the ring is full
    assert write(writer, 8) == 10  # no room at all: its 9 hits and its end entry dropped
    assert reader.take(6).complete
    got = reader.take(8)
    assert not got.complete and set(got.hits) == set()
    assert write(writer, 3) == 0 and reader.take(3).complete  # and the ring goes on


def test_unknown_file_id_and_full_table_mark_partial() -> None:
    """Regression: hits of a file whose path never reached the table resolved to nothing, silently."""
    ring = cr.create(64, table_bytes=64)
    writer, reader = ring_writer.RingWriter(ring), ring_reader.RingReader(ring)
    writer.publish_files(["/w/a.py", "/w/" + "b" * ring.table_size + ".py"])  # the second does not fit the table
    assert writer.table_full and writer.files_published == 1
    writer.write_test(1, array("I", [3]), array("I", [0]))
    writer.write_test(2, array("I", [4]), array("I", [1]))
    first, second = reader.take(1), reader.take(2)
    assert not first.complete and not second.complete  # the table is full: the writer marks every test partial
    assert reader.files == {0: "/w/a.py"}


def test_lines_outside_tests_accumulate_under_id_zero() -> None:
    writer, reader = new_ring(64)
    writer.write_test(0, array("I", [1, 2]), array("I", [0, 0]))
    write(writer, 5)
    writer.write_test(0, array("I", [3]), array("I", [1]))
    assert set(reader.take(5).hits) == packed(5)
    assert reader.outside == {1, 2, 1 << 32 | 3}


@pytest.mark.parametrize("corrupt", [False, True], ids=["intact", "torn-entry"])
def test_a_published_entry_that_fails_its_check_is_dropped(corrupt: bool) -> None:
    """Regression: a torn or stale slot inside the published range read as a real line of the test.

    Arms: the same three tests with the middle one's first entry intact, and
    with its line field not written (as a store reordered past the index
    would leave it on a weakly ordered CPU): that test is partial without the
    bad entry, its neighbours untouched.
    """
    writer, reader = new_ring(64)
    for test in (1, 2, 3):
        write(writer, test)
    if corrupt:
        slot = len(lines_of(1)) + 1  # test 2's first entry
        at = cr.ENTRIES_AT + slot * cr.ENTRY
        writer.ring.mm[at : at + 4] = bytes(4)
    got = {test: reader.take(test) for test in (1, 2, 3)}
    assert got[1].complete and set(got[1].hits) == packed(1)
    assert got[3].complete and set(got[3].hits) == packed(3)
    assert got[2].complete is not corrupt
    assert set(got[2].hits) == (packed(2) - {min(packed(2), key=lambda h: h & 0xFFFFFFFF)} if corrupt else packed(2))
    assert reader.torn == (1 if corrupt else 0)


WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from array import array
    sys.path.insert(0, {repo!r})
    from tach_ls.engine import coverage_ring as cr, ring_writer
    from tests.unit.test_coverage_ring import FILES, lines_of

    ring = cr.attach(int(sys.argv[1]))
    writer = ring_writer.RingWriter(ring)
    writer.publish_files(FILES)
    mode, count = sys.argv[2], int(sys.argv[3])
    for test in range(1, count + 1):
        pairs = lines_of(test)
        while mode == "paced" and ring.capacity - (writer.write - ring.load(cr.READ_AT)) < len(pairs) + 1:
            pass  # only this test waits for the reader: a worker never does, it counts an overflow
        writer.write_test(test, array("I", [p[1] for p in pairs]), array("I", [p[0] for p in pairs]))
    if mode == "killed-mid-record":
        # What a SIGKILL in the middle of the copy leaves: the next test's first entry half written,
        # the write index not yet moved.
        slot = writer.write % ring.capacity
        at = cr.ENTRIES_AT + slot * cr.ENTRY
        ring.mm[at : at + 8] = (12345).to_bytes(4, "little") + (1).to_bytes(4, "little")
        os.kill(os.getpid(), signal.SIGKILL)
    if mode == "endless":
        test = count
        while True:
            test += 1
            pairs = lines_of(test)
            writer.write_test(test, array("I", [p[1] for p in pairs]), array("I", [p[0] for p in pairs]))
    """
).format(repo=str(REPO))


def spawn_writer(ring: cr.Ring, mode: str, count: int, tmp_path: Path) -> subprocess.Popen[bytes]:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    return subprocess.Popen(
        [sys.executable, str(script), str(ring.fd), mode, str(count)], pass_fds=[ring.fd], cwd=REPO
    )


def drain_until_exit(reader: ring_reader.RingReader, proc: subprocess.Popen[bytes], bound: float = 30.0) -> dict[int, ring_reader.TestHits]:
    """Drain concurrently while the writer runs; every test id seen so far, taken."""
    deadline = time.monotonic() + bound
    while proc.poll() is None:
        reader.drain()
        assert time.monotonic() < deadline, "writer did not finish"
    reader.finish()
    return {test: reader.take(test) for test in list(reader.tests)}


@pytest.mark.parametrize(
    ("capacity", "mode"), [(1 << 16, "clean"), (64, "paced"), (64, "clean")], ids=["roomy", "tight-paced", "tight-overflowing"]
)
def test_concurrent_writer_and_reader_in_two_processes(capacity: int, mode: str, tmp_path: Path) -> None:
    """Regression: the reader seeing an index before the entries it covers, across two processes.

    The writer is another process that maps the ring from its descriptor (as
    the supervisor maps a worker's) and writes 3000 tests while this process
    drains. Arms: a roomy ring (no wrap; every test complete and exact), a
    tight one whose writer waits for room so the ring wraps hundreds of times
    under both processes (every test still complete and exact), and a tight
    one whose writer does not wait (it overflows: a complete test is exact,
    a partial one holds only its own lines).
    """
    writer, reader = new_ring(capacity)
    proc = spawn_writer(writer.ring, mode, 3000, tmp_path)
    seen = drain_until_exit(reader, proc)
    assert proc.returncode == 0
    assert reader.torn == 0 and not reader.broken
    complete = [t for t, got in seen.items() if got.complete]
    for test, got in seen.items():
        assert set(got.hits) == packed(test) if got.complete else set(got.hits) <= packed(test), test
    if mode == "clean" and capacity == 64:
        assert complete and reader.overflow > 0
        return
    assert len(complete) == 3000 and reader.overflow == 0
    assert (reader.read > 100 * capacity) == (capacity == 64)


@pytest.mark.parametrize("mode", ["clean", "killed-mid-record"])
def test_writer_killed_mid_record(mode: str, tmp_path: Path) -> None:
    """Regression: a half-written entry of a killed worker read as a line, or its test reported complete.

    Arms: a writer that exits after its 40th test, and one SIGKILLed while
    copying the 41st test's first entry. The torn entry is counted and dropped,
    the 40 tests before it are complete and exact, test 41 has nothing.
    """
    writer, reader = new_ring(1 << 10)
    proc = spawn_writer(writer.ring, mode, 40, tmp_path)
    seen = drain_until_exit(reader, proc)
    killed = mode == "killed-mid-record"
    assert proc.returncode == (-signal.SIGKILL if killed else 0)
    assert all(seen[t].complete and set(seen[t].hits) == packed(t) for t in range(1, 41))
    assert reader.torn == (1 if killed else 0)
    assert 41 not in seen and not reader.take(41).complete


def test_writer_killed_at_a_random_moment_is_never_wrong(tmp_path: Path) -> None:
    """Regression: any kill point of a busy writer leaving a wrong line on a complete test."""
    for _ in range(3):
        writer, reader = new_ring(256)
        proc = spawn_writer(writer.ring, "endless", 0, tmp_path)
        deadline = time.monotonic() + 20
        while reader.read < 2000:
            reader.drain()
            assert time.monotonic() < deadline, "the writer wrote nothing"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        reader.finish()
        for test in list(reader.tests):
            got = reader.take(test)
            assert set(got.hits) == packed(test) if got.complete else set(got.hits) <= packed(test)


def test_attach_refuses_what_is_not_a_ring() -> None:
    fd = os.memfd_create("not-a-ring")
    os.ftruncate(fd, 4096)
    with pytest.raises(cr.RingError):
        cr.attach(fd)


def test_stamps_follow_the_lap_and_skip_zero_across_the_32_bit_wrap() -> None:
    """A slot holds another stamp on each pass of the ring (a stale entry fails), and no stamp is 0 (a zeroed slot fails)."""
    assert list(cr.stamps(14, 4, capacity=16)) == [1, 1, 2, 2]
    got = cr.stamps((cr.STAMP_MODULO - 1) * 4 + 2, 4, capacity=4)
    assert list(got) == [cr.STAMP_MODULO, cr.STAMP_MODULO, 1, 1]
    assert 0 not in got


@pytest.mark.parametrize("grouped", [True, False], ids=["grouped", "ungrouped"])
def test_grouped_hits_are_taken_as_they_are_and_others_are_sorted(grouped: bool) -> None:
    """Two arms against the regression of a test's lines coming out doubled or split: a writer that promises
    its hits file by file, each once (every tach-ls backend), is taken as it is; one that does not is sorted and
    de-duplicated."""
    writer, reader = new_ring(64)
    if grouped:
        lines, files = array("I", [9, 3, 2]), array("I", [0, 0, 4])
    else:
        lines, files = array("I", [2, 9, 3, 9]), array("I", [4, 0, 0, 0])
    writer.write_test(1, lines, files, grouped=grouped)
    got = reader.take(1)
    assert got.complete and got.grouped is grouped
    assert list(ring_reader.pack(*got.unique())) == ([9, 3, 4 << 32 | 2] if grouped else [3, 9, 4 << 32 | 2])


# -- named line sets -------------------------------------------------------------------------


Names = dict[int, Any]


def resolved(feed: CoverageFeed, reader: ring_reader.RingReader, test: int, names: Names) -> tuple[dict[str, list[int]], bool, bool]:
    got = reader.take(test)
    found, unknown = feed.resolve_test(reader, got, names)
    return found, got.complete and not unknown, got.whole


def named_ring(capacity: int = 1 << 12, map_bytes: int = 4096) -> tuple[ring_writer.RingWriter, ring_reader.RingReader, CoverageFeed, Names]:
    writer, reader = new_ring(capacity, map_bytes)
    return writer, reader, CoverageFeed(Path("/w")), {}


def test_a_set_run_again_travels_as_one_entry_and_resolves_to_the_same_list() -> None:
    """Regression: repeated sets re-sent line by line (the cost this saves), or a reference resolved to another
    file's lines. Arms: a file whose set repeats (one AGAIN entry, the very same list) and one whose set
    changed (its lines again, sorted); a bytes map and a frozenset give the same lines."""
    writer, reader, feed, names = named_ring()
    first = [(0, frozenset({3, 1, 2})), (1, bytes([0, 1, 0, 1]))]
    assert writer.write_sets(1, first) == 0
    one, complete, _ = resolved(feed, reader, 1, names)
    assert one == {"f0.py": [1, 2, 3], "f1.py": [1, 3]} and complete
    before = writer.write
    assert writer.write_sets(2, [(0, frozenset({1, 2, 3})), (1, bytes([0, 0, 1]))]) == 0
    assert writer.write - before == 1 + 3 + 1 + 1  # AGAIN, the map's three entries, NAMED, the end entry
    two, complete, _ = resolved(feed, reader, 2, names)
    assert two == {"f0.py": [1, 2, 3], "f1.py": [2]} and complete
    assert two["f0.py"] is one["f0.py"]


def test_a_name_is_learnt_only_from_a_test_that_arrived_whole() -> None:
    """Regression: a set named by a test with a torn entry bound to fewer lines than the worker meant, so every
    later test that ran it again would be silently short. Arms: intact, the later test is complete; one entry
    of the naming test torn, both tests are partial, never wrong."""
    for torn in (False, True):
        writer, reader, feed, names = named_ring()
        writer.write_sets(1, [(0, frozenset({5, 6, 7}))])
        if torn:
            at = cr.ENTRIES_AT + 3 * 4  # the first entry's check word
            reader.ring.mm[at : at + 4] = b"\xff\xff\xff\xff"
        one, complete_one, whole = resolved(feed, reader, 1, names)
        writer.write_sets(3, [(0, frozenset({5, 6, 7}))])  # not the next test: an AGAIN, not a SAME
        two, complete_two, _ = resolved(feed, reader, 3, names)
        assert whole is not torn and complete_one is not torn and complete_two is not torn, torn
        assert set(one.get("f0.py", [])) <= {5, 6, 7} and two in ({}, {"f0.py": [5, 6, 7]})
        assert (two == {"f0.py": [5, 6, 7]}) is not torn


def test_a_full_ring_makes_the_writer_forget_the_names_it_could_not_send() -> None:
    """Regression: the writer kept the name of a set the ring had no room for, so every later test that ran
    that set again was partial. Arms: a set written whole is referred to; one cut short is sent again."""
    writer, reader, feed, names = named_ring(capacity=8)
    big = frozenset(range(1, 20))
    assert writer.write_sets(1, [(0, big)]) > 0  # cut short: partial, and no name kept
    _, complete, _ = resolved(feed, reader, 1, names)
    assert not complete and writer.names == {}
    small = frozenset({1, 2})
    assert writer.write_sets(2, [(0, small)]) == 0
    assert writer.write_sets(3, [(0, small)]) == 0
    assert resolved(feed, reader, 2, names)[:2] == ({"f0.py": [1, 2]}, True)
    assert resolved(feed, reader, 3, names)[:2] == ({"f0.py": [1, 2]}, True)


@pytest.mark.parametrize("marks", [[], [0], [1, 2, 3], [0, 7, 8, 200, 255, 256, 1000]])
def test_a_line_map_reads_back_as_its_line_numbers(marks: list[int]) -> None:
    """Regression: an off-by-one in the gap arithmetic (a mark at 0, marks next to each other, past 255)."""
    size = max(marks, default=0) + 5
    data = bytearray(size)
    for line in marks:
        data[line] = 1
    assert cr.line_numbers(bytes(data)) == marks
    assert sorted(cr.line_numbers(frozenset(marks))) == marks


def test_lines_outside_any_test_are_sent_plainly() -> None:
    """Regression: the lines of test id 0 (a batch's collection) were named, but the reader files them as
    outside any test and learns no name from them, so a later test that ran that set again was partial.
    Arms: the set first seen outside any test, then in a test; the test is complete."""
    writer, reader, feed, names = named_ring()
    collection = frozenset({1, 2})
    writer.write_sets(0, [(0, collection)])
    writer.write_sets(1, [(0, collection)])
    assert resolved(feed, reader, 1, names)[:2] == ({"f0.py": [1, 2]}, True)
    assert reader.outside == {0 << 32 | 1, 0 << 32 | 2}


@pytest.mark.parametrize("kind", ["map", "set"])
def test_a_set_a_few_lines_off_a_named_one_travels_as_those_lines(kind: str) -> None:
    """Regression: a test module's next test re-sent every line its module ran (most of a new set is the
    module's last set again), or the lines toggled in a named set resolved to the wrong ones. Arms: lines
    added and removed against the file's last set (a frozenset, and a bytes map the map area has no room
    for); a set with more lines changed than kept is sent whole."""
    writer, reader, feed, names = named_ring(map_bytes=1)

    def as_kind(lines: set[int]) -> cr.LineSet:
        if kind == "set":
            return frozenset(lines)
        data = bytearray(40)
        for line in lines:
            data[line] = 1
        return bytes(data)

    first = set(range(1, 30))
    writer.write_sets(1, [(0, as_kind(first))])
    assert resolved(feed, reader, 1, names)[:2] == ({"f0.py": sorted(first)}, True)
    before = writer.write
    second = (first - {3, 4}) | {31}
    writer.write_sets(2, [(0, as_kind(second))])
    assert writer.write - before == 1 + 3 + 1 + 1  # BASE, the three lines toggled, NAMED, the end entry
    assert resolved(feed, reader, 2, names)[:2] == ({"f0.py": sorted(second)}, True)
    before = writer.write
    third = {1, 2, 35}
    writer.write_sets(3, [(0, as_kind(third))])
    assert writer.write - before == 3 + 1 + 1  # its lines, NAMED, the end entry
    assert resolved(feed, reader, 3, names)[:2] == ({"f0.py": [1, 2, 35]}, True)


def test_lines_toggled_in_a_set_the_reader_never_learnt_are_dropped_and_the_test_is_partial() -> None:
    """Regression: toggled lines applied to the wrong set, or taken as the test's lines, when the set they
    refer to came in a test with a torn entry, or the toggling test lost one (a lost toggle would add a
    line the test never ran). Arms: both intact, the second test is complete and exact; either one torn,
    the second test is partial and has no line of that file."""
    for torn in ("none", "base", "toggles"):
        writer, reader, feed, names = named_ring()
        writer.write_sets(1, [(0, frozenset(range(1, 20)))])
        if torn == "base":
            at = cr.ENTRIES_AT + 3 * 4
            reader.ring.mm[at : at + 4] = b"\xff\xff\xff\xff"
        resolved(feed, reader, 1, names)
        first = writer.write
        writer.write_sets(2, [(0, frozenset(range(2, 21)))])
        if torn == "toggles":  # the entry after BASE: one of the two lines toggled
            at = cr.ENTRIES_AT + (first + 1) * cr.ENTRY + 3 * 4
            reader.ring.mm[at : at + 4] = b"\xff\xff\xff\xff"
        two, complete, _ = resolved(feed, reader, 2, names)
        assert (two, complete) == (({}, False) if torn != "none" else ({"f0.py": list(range(2, 21))}, True)), torn



# -- line maps -------------------------------------------------------------------------------


def line_map(lines: set[int], size: int = 40) -> bytes:
    data = bytearray(size)
    for line in lines:
        data[line] = 1
    return bytes(data)


def test_a_new_map_travels_as_bytes_and_reads_back_as_its_lines() -> None:
    """Regression: a map's lines listed in the worker (the cost this saves), or read back from the wrong
    place, or with line 0 (an empty module's lone instruction). Arms: a new map (three entries and NAMED),
    the same map again (one AGAIN entry, the same list), a map with line 0."""
    writer, reader, feed, names = named_ring()
    writer.write_sets(1, [(0, line_map({0, 3, 7, 39})), (1, line_map({2}))])
    assert writer.write == 2 * (3 + 1) + 1 and writer.map_write == 80
    one, complete, _ = resolved(feed, reader, 1, names)
    assert one == {"f0.py": [3, 7, 39], "f1.py": [2]} and complete
    writer.write_sets(2, [(0, line_map({0, 3, 7, 39}))])
    two, complete, _ = resolved(feed, reader, 2, names)
    assert two == {"f0.py": [3, 7, 39]} and complete and two["f0.py"] is one["f0.py"]
    assert writer.write == 9 + 2 and reader.map_read == 80 == reader.ring.load(cr.MAP_READ_AT)


def test_maps_wrap_around_the_map_area_and_wait_for_room() -> None:
    """Regression: a map that runs past the end of the area read back cut or shifted, or a map written over
    one the reader had not copied out yet. Arms: maps written and read one by one go round the area
    several times; maps written with the reader away go as line entries once the area is full."""
    writer, reader, feed, names = named_ring(map_bytes=64)
    for test in range(1, 8):  # 40-byte maps in a 64-byte area: most of them straddle its end
        lines = {test, 10 + test, 39}
        writer.write_sets(test, [(test % 2, line_map(lines))])
        assert resolved(feed, reader, test, names)[:2] == ({f"f{test % 2}.py": sorted(lines)}, True), test
    assert writer.map_write == 7 * 40
    first, second = {1, 2}, {3, 4}
    writer.write_sets(8, [(2, line_map(first))])  # room for one map only, until the reader copies it out
    mapped = writer.map_write
    writer.write_sets(9, [(3, line_map(second))])
    assert writer.map_write == mapped  # no room: its lines went as entries
    assert resolved(feed, reader, 8, names)[:2] == ({"f2.py": [1, 2]}, True)
    assert resolved(feed, reader, 9, names)[:2] == ({"f3.py": [3, 4]}, True)


@pytest.mark.parametrize("damage", ["none", "map", "freed"])
def test_a_map_not_intact_is_dropped_and_its_test_is_partial(damage: str) -> None:
    """Regression: a map whose bytes changed after it was written (torn, or written over once its room was
    freed) read as the test's lines. Arms: intact; a byte of it changed; taken after a later map freed its
    room. The test is partial with no line of that file, never wrong."""
    writer, reader, feed, names = named_ring()
    writer.write_sets(1, [(0, line_map({1, 2})), (1, line_map({5}))])
    writer.write_sets(2, [(2, line_map({9}))])
    if damage == "map":
        at = reader.ring.maps_at + 3
        reader.ring.mm[at : at + 1] = b"\x01"
    if damage == "freed":
        resolved(feed, reader, 2, names)
    got, complete, _ = resolved(feed, reader, 1, names)
    if damage == "none":
        assert (got, complete) == ({"f0.py": [1, 2], "f1.py": [5]}, True)
    else:
        assert not complete and got.get("f0.py") is None
        assert got.get("f1.py") in (None, [5])


@pytest.mark.parametrize("damage", ["none", "torn-line", "torn-map", "cut"])
def test_a_test_that_did_not_arrive_whole_keeps_only_lines_it_ran(damage: str) -> None:
    """Regression: a test with a torn entry or cut short by a full ring reported a number that is not one of its
    lines: a map's position or sum once the map's first entry was torn. Arms: whole; a line's entry torn, and
    a map's first entry torn (partial, no lines: what is left cannot be told apart); cut short in the middle of
    a map (partial, the lines before the cut)."""
    writer, reader, feed, names = named_ring(capacity=6 if damage == "cut" else 1 << 12)
    writer.write_sets(1, [(0, frozenset({4, 5})), (1, line_map({7, 8}))])
    if damage.startswith("torn"):
        slot = 0 if damage == "torn-line" else 3  # line 4's entry; the map's MAP entry
        at = cr.ENTRIES_AT + slot * cr.ENTRY + 3 * 4  # its check word
        reader.ring.mm[at : at + 4] = b"\xff\xff\xff\xff"
    got, complete, _ = resolved(feed, reader, 1, names)
    assert complete is (damage == "none")
    assert got == {"none": {"f0.py": [4, 5], "f1.py": [7, 8]}, "cut": {"f0.py": [4, 5]}}.get(damage, {})


def test_a_map_any_ring_sent_before_is_not_listed_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: every worker's ring, and every run, listed the lines of the same maps again (most of what
    a new set costs the supervisor). Arms: a second ring sending the same map gets the same list; past the
    cache's budget the map is listed again, to the same lines."""
    feed = CoverageFeed(Path("/w"))
    lists = []
    for ring_number in range(3):
        writer, reader = new_ring(64)
        if ring_number == 2:  # another map comes first, and past the budget the cache starts again
            monkeypatch.setattr(coverage_feed, "MAP_CACHE", 0)
            writer.write_sets(1, [(0, line_map({7}))])
            assert feed.resolve_test(reader, reader.take(1), {}) == ({"f0.py": [7]}, False)
        writer.write_sets(2, [(0, line_map({2, 5}))])
        found, unknown = feed.resolve_test(reader, reader.take(2), {})
        assert not unknown
        lists.append(found["f0.py"])
    assert lists[0] == lists[1] == lists[2] == [2, 5]
    assert lists[1] is lists[0] and lists[2] is not lists[0]


def test_a_take_written_from_one_map_reads_back_as_the_same_sets_do() -> None:
    """Regression: ``write_map`` (the probes' take left whole, each part compared in place with its file's
    last set) referring a part to the wrong set: one of another length that starts the same (a file that got
    a longer part), or one from before the file's set changed. Arms: the same random takes through
    ``write_sets`` (sliced) and through ``write_map``; every test reads back the same, and the unsliced way
    sends no more entries."""
    import random

    rng = random.Random(20261207)
    sizes = [24, 40, 8, 16]
    rings = {how: named_ring(map_bytes=256) for how in ("sets", "map")}
    for test in range(1, 120):
        spans, seen, at = [], bytearray(), 0
        for file_id, size in enumerate(sizes):
            if rng.random() < 0.3:
                continue
            size += 8 if test > 60 and file_id == 1 else 0  # a longer part for file 1 from here on
            part = bytearray(size)
            for line in rng.sample(range(size), rng.choice([1, 2, 3])):
                part[line] = 1
            if rng.random() < 0.6:  # most often the file's first lines only: sets repeat, and prefixes
                part = bytearray(size)
                part[1] = 1
            spans.append((file_id, at, at + size))
            seen += part
            at += size
        data = bytes(seen)
        for how, (writer, reader, feed, names) in rings.items():
            if how == "sets":
                assert writer.write_sets(test, [(f, data[a:b]) for f, a, b in spans]) == 0
            else:
                assert writer.write_map(test, data, lambda _: spans) == 0
        results = [resolved(feed, reader, test, names)[:2] for writer, reader, feed, names in rings.values()]
        expected = {f"f{f}.py": cr.line_numbers(data[a:b])[1 if data[a] else 0 :] for f, a, b in spans}
        expected = {path: lines for path, lines in expected.items() if lines}
        assert results[0] == results[1] == (expected, True), test
    assert rings["map"][0].write <= rings["sets"][0].write
    writer, reader, feed, names = named_ring()
    writer.write_map(1, line_map({1}), lambda _: [(0, 0, 40)])
    longer = line_map({1, 44}, 48)  # starts as the file's last set did, and goes on
    writer.write_map(2, longer, lambda _: [(0, 0, 48)])
    assert resolved(feed, reader, 1, names)[:2] == ({"f0.py": [1]}, True)
    assert resolved(feed, reader, 2, names)[:2] == ({"f0.py": [1, 44]}, True)


@pytest.mark.parametrize("how", ["sets", "map"])
def test_a_test_that_ran_what_the_test_before_it_ran_is_one_entry_and_never_wrong(how: str) -> None:
    """Regression: a test that ran the very same lines as the test before it re-sent a mark per file (the
    cost ``SAME`` saves), or took lines the test before it never had whole. Arms: the same take twice (one
    entry, the same lines, complete); the test before it torn (partial, no line it did not run); the test
    before it never resolved here (partial, no lines); a different take (sent as sets); a test after one the
    ring could not hold whole (sent as sets)."""
    take = line_map({2, 5}) + line_map({7})

    def write(writer: ring_writer.RingWriter, test: int, data: bytes = take) -> int:
        if how == "map":
            return writer.write_map(test, data, lambda _: [(0, 0, 40), (1, 40, 80)])
        return writer.write_sets(test, [(0, data[:40]), (1, data[40:])])

    expected = {"f0.py": [2, 5], "f1.py": [7]}
    writer, reader, feed, names = named_ring()
    write(writer, 1)
    before = writer.write
    write(writer, 2)
    assert writer.write - before == 2  # SAME and the end entry
    one, two = resolved(feed, reader, 1, names), resolved(feed, reader, 2, names)
    assert one == (expected, True, True) and two == (expected, True, True)
    before = writer.write
    write(writer, 3, line_map({2}) + line_map({7}))
    assert writer.write - before > 2
    assert resolved(feed, reader, 3, names)[:2] == ({"f0.py": [2], "f1.py": [7]}, True)

    writer, reader, feed, names = named_ring()
    write(writer, 1)
    reader.ring.mm[cr.ENTRIES_AT + 3 * 4 : cr.ENTRIES_AT + 4 * 4] = b"\xff\xff\xff\xff"  # a check word
    write(writer, 2)
    (one, complete_one, _), (two, complete_two, _) = resolved(feed, reader, 1, names), resolved(feed, reader, 2, names)
    assert not complete_one and not complete_two and two == one
    assert all(set(lines) <= set(expected[path]) for path, lines in two.items())

    writer, reader, feed, names = named_ring()
    write(writer, 1)
    write(writer, 2)
    reader.take(1)  # drained, never resolved
    assert resolved(feed, reader, 2, names)[:2] == ({}, False)

    writer, reader, feed, names = named_ring(capacity=8)
    write(writer, 1)
    assert writer.write_sets(2, [(0, frozenset(range(1, 20)))]) > 0  # cut short
    reader.take(1)
    reader.take(2)
    before = writer.write
    write(writer, 3)
    write(writer, 3 + 1)
    assert writer.write - before > 2 + 2
