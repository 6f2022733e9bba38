"""Server-side coverage: resolving ring hits, a run's aggregation, coverage.py's analysis, LCOV, the file filter."""

from __future__ import annotations

import os
import shutil
from array import array
from pathlib import Path

import pytest

from tach_ls import coverage_data
from tach_ls.engine import coverage_ring, ring_reader, ring_writer, tracer
from tach_ls.engine.coverage_feed import CoverageFeed, RunCoverageBuilder
from tach_ls.engine.results import Status, TestResult
from tach_ls.report import lcov

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "projects" / "coverage_basic"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "coverage_basic"
    shutil.copytree(FIXTURE, root)
    return root


def test_resolve_groups_hits_by_file_and_flags_unknown_ids(tmp_path: Path) -> None:
    feed = CoverageFeed(tmp_path)
    root = os.path.realpath(tmp_path)
    files = {0: f"{root}/a.py", 1: f"{root}/pkg/b.py", 2: "/elsewhere/c.py"}
    hits = {0 << 32 | 3, 0 << 32 | 1, 1 << 32 | 7, 1 << 32 | 2}

    def packed(found: set[int]) -> tuple[array[int], array[int]]:
        return ring_reader.unpack(array("Q", sorted(found)))

    assert feed.resolve(files, packed(hits)) == ({"a.py": [1, 3], "pkg/b.py": [2, 7]}, False)
    assert feed.resolve(files, packed(hits | {2 << 32 | 1})) == ({"a.py": [1, 3], "pkg/b.py": [2, 7]}, True)  # outside the root
    assert feed.resolve(files, packed({9 << 32 | 1}))[1] is True  # an id the table never got


def test_fill_takes_the_test_from_its_workers_ring(tmp_path: Path) -> None:
    """Regression: a result getting the lines of another worker's test with the same test id."""
    feed = CoverageFeed(tmp_path)
    root = os.path.realpath(tmp_path)
    writers = {}
    for worker in (1, 2):
        ring = coverage_ring.create(64, 4096)
        writer = ring_writer.RingWriter(ring)
        writer.publish_files([f"{root}/w{worker}.py"])
        writer.write_test(1, array("I", [10 * worker]), array("I", [0]))
        feed.attach(worker, 100 + worker, os.dup(ring.fd))
        writers[worker] = (ring, writer)
    first, second = TestResult("t::a", Status.PASSED), TestResult("t::b", Status.PASSED)
    feed.fill(first, 1, 1)
    feed.fill(second, 2, 1)
    assert (first.coverage, first.coverage_partial) == ({"w1.py": [10]}, False)
    assert (second.coverage, second.coverage_partial) == ({"w2.py": [20]}, False)
    lost = TestResult("t::c", Status.PASSED)
    feed.fill(lost, 3, 1)  # a worker whose ring never arrived
    assert (lost.coverage, lost.coverage_partial) == ({}, True)
    feed.release(1)
    feed.release(2)
    assert feed.rings == {}
    for ring, _ in writers.values():
        ring.close()


def test_attach_refuses_a_descriptor_that_is_not_a_ring(tmp_path: Path) -> None:
    feed = CoverageFeed(tmp_path)
    fd = os.memfd_create("junk")
    os.ftruncate(fd, 4096)
    feed.attach(1, 42, fd)
    assert feed.rings == {} and any("not a tach-ls coverage ring" in n for n in feed.notes)


@pytest.mark.parametrize("newer", [False, True], ids=["same-generation", "newer-generation"])
def test_lines_outside_tests_follow_the_collected_layer(tmp_path: Path, newer: bool) -> None:
    """Regression: import-time lines of a collected layer thrown away still reported after a re-fork."""
    feed = CoverageFeed(tmp_path)
    root = os.path.realpath(tmp_path)
    feed.base(1, {f"{root}/a.py": [1, 2]})
    feed.base(2 if newer else 1, {f"{root}/a.py": [5]})
    feed.base(1, {f"{root}/late.py": [1]}) if newer else None  # a late message of the old layer: ignored
    assert feed.outside == ({"a.py": {5}} if newer else {"a.py": {1, 2, 5}})


def test_run_builder_marks_what_ran_without_lines_partial(tmp_path: Path) -> None:
    feed = CoverageFeed(tmp_path)
    feed.outside = {"a.py": {1}}
    builder = RunCoverageBuilder(feed)
    ok = TestResult("t::ok", Status.PASSED, worker=7, coverage={"a.py": [3], "b.py": [1]})
    crashed = TestResult("t::crash", Status.CRASHED, worker=7)
    never = TestResult("t::collect", Status.ERROR)  # a collection error: never ran
    for result in (ok, crashed, never):
        builder.add(result)
    run = builder.finish()
    assert run.tests == {"t::ok": {"a.py": [3], "b.py": [1]}, "t::crash": {}}
    assert run.partial == ["t::crash"] and crashed.coverage == {} and crashed.coverage_partial
    assert never.coverage is None
    assert run.files == {"a.py": [1, 3], "b.py": [1]}


def test_files_that_share_a_line_list_are_each_in_the_run(tmp_path: Path) -> None:
    """Regression: two templates with the same line map got the same list from the feed's map cache, and the
    run's totals kept only the first file (Flask: 3 of 65 files missing from LCOV). Arms: two files sharing
    one list in one test, and a later test running the first again: both files in the totals."""
    builder = RunCoverageBuilder(CoverageFeed(tmp_path))
    shared = [1, 2, 4]
    builder.add(TestResult("t::a", Status.PASSED, worker=1, coverage={"x.html": shared, "y.txt": shared}))
    builder.add(TestResult("t::b", Status.PASSED, worker=1, coverage={"x.html": shared}))
    assert builder.finish().files == {"x.html": [1, 2, 4], "y.txt": [1, 2, 4]}


def test_analysis_matches_coverage_py_report(project: Path) -> None:
    """Regression: "missed" lines that disagree with coverage.py's report (statements, exclusions, multi-line)."""
    from coverage import Coverage
    from coverage.python import PythonFileReporter

    rel = "src/calc/ops.py"
    path = project / rel
    executed = list(range(1, 40)) + [85, 86]  # some of everything, including a continuation line
    ours = coverage_data.analyze(project, {rel: executed})[rel]
    cov = Coverage(data_file=None, config_file=str(project / "pyproject.toml"))
    reporter = PythonFileReporter(str(path), cov)
    statements = reporter.lines()
    covered = reporter.translate_lines(executed) & statements
    assert ours.executable == sorted(statements)
    assert ours.covered == sorted(covered)
    assert ours.missed == sorted(statements - covered)
    text = path.read_text().splitlines()
    assert text.index("    raise NotImplementedError") + 1 not in ours.executable  # the project's exclude_also


def test_a_file_that_does_not_parse_reports_what_ran(project: Path) -> None:
    (project / "broken.py").write_text("def f(:\n")
    report = coverage_data.analyze(project, {"broken.py": [1]})["broken.py"]
    assert (report.covered, report.missed, report.executable) == ([1], [], [])


def test_lcov_has_da_lf_lh_per_file() -> None:
    reports = {
        "b.py": coverage_data.FileReport("b.py", covered=[1], missed=[], executable=[1]),
        "a.py": coverage_data.FileReport("a.py", covered=[1, 3], missed=[2], executable=[1, 2, 3]),
    }
    assert lcov.render(reports) == (
        "SF:a.py\nDA:1,1\nDA:2,0\nDA:3,1\nLF:3\nLH:2\nend_of_record\n"
        "SF:b.py\nDA:1,1\nLF:1\nLH:1\nend_of_record\n"
    )


def test_file_filter_keeps_workspace_sources_only(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    (root / ".venv" / "lib").mkdir(parents=True)
    collector = tracer.Collector(str(root), omit=["build/*"], core="settrace")
    assert collector.file_id(str(root / "pkg" / "a.py")) == 0
    assert collector.file_id("pkg/a.py") == 0  # relative names are taken from the root
    assert collector.file_id(str(root / ".venv" / "lib" / "x.py")) is None
    assert collector.file_id(str(root / "build" / "gen.py")) is None
    assert collector.file_id(str(tmp_path / "outside.py")) is None
    assert collector.file_id("<string>") is None
    assert collector.file_id(tracer.__file__) is None  # tach-ls's own engine, even inside a workspace
    assert collector.paths == [os.path.realpath(root / "pkg" / "a.py")]


def test_coverage_index_hovers_and_sends_only_changed_gutters() -> None:
    """Regression: a test's old lines still listed after it ran again, or every gutter resent after each run."""
    from tach_ls.coverage_index import CoverageIndex

    index = CoverageIndex()
    index.update({"t.py::a": {"m.py": [1, 3]}, "t.py::b": {"m.py": [3]}}, ["t.py::b"])
    assert index.tests_at("m.py", 3) == ["t.py::a", "t.py::b"]
    assert index.hover("m.py", 1) == "Covered by 1 test: `t.py::a`"
    assert index.hover("m.py", 2) is None
    index.update({"t.py::b": {"m.py": [4]}}, [])  # b ran again, elsewhere; a keeps its lines
    assert index.tests_at("m.py", 3) == ["t.py::a"] and index.partial == set()
    first = {"m.py": coverage_data.FileReport("m.py", [1], [2], [1, 2])}
    assert [r.rel for r in index.changed(first)] == ["m.py"]
    assert index.changed(first) == []
    index.forget_tests("t.py::")
    assert index.by_test == {}
