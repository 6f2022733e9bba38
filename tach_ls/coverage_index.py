"""What the editor is shown of coverage: which tests ran each line, and the gutters last sent.

Pure and server side; the workspace owns one. After each run with coverage
on, ``update`` takes the run's per-test lines (a test's new lines replace its
old ones; tests not in the run keep theirs), so a hover on a source line can
list the tests that executed it (``tests_at``, a bisect per test: hovers are
rare, runs are not); ``changed`` returns the files
whose covered/missed lines differ from what was last sent, for
``tach/coverage``. Lines are 1-based here, as the engine gives them.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping

from tach_ls.coverage_data import FileReport

NodeId = str
RelPath = str

HOVER_LIMIT = 10


class CoverageIndex:
    def __init__(self) -> None:
        self.by_test: dict[NodeId, Mapping[RelPath, list[int]]] = {}
        """Each test's lines from its last run with coverage (sorted, as the engine gives them)."""
        self.partial: set[NodeId] = set()
        self.sent: dict[RelPath, tuple[list[int], list[int]]] = {}

    def update(self, tests: Mapping[NodeId, Mapping[RelPath, list[int]]], partial: list[NodeId]) -> None:
        """A run's per-test lines; O(tests): a full run must not hold the server's loop (lines are looked up on hover)."""
        self.by_test.update(tests)
        self.partial.difference_update(tests)
        self.partial.update(partial)

    def forget_tests(self, prefix: str) -> None:
        """Tests of a deleted file (node ids starting with ``prefix``)."""
        for nodeid in [n for n in self.by_test if n.startswith(prefix)]:
            del self.by_test[nodeid]
            self.partial.discard(nodeid)

    def tests_at(self, rel: RelPath, line: int) -> list[NodeId]:
        found = []
        for nodeid, files in self.by_test.items():
            lines = files.get(rel)
            if lines:
                at = bisect.bisect_left(lines, line)
                if at < len(lines) and lines[at] == line:
                    found.append(nodeid)
        return sorted(found)

    def hover(self, rel: RelPath, line: int) -> str | None:
        """Markdown listing the tests that ran ``line`` (1-based), or None."""
        tests = self.tests_at(rel, line)
        if not tests:
            return None
        shown = ", ".join(f"`{n}`" for n in tests[:HOVER_LIMIT])
        more = f" and {len(tests) - HOVER_LIMIT} more" if len(tests) > HOVER_LIMIT else ""
        noun = "test" if len(tests) == 1 else "tests"
        return f"Covered by {len(tests)} {noun}: {shown}{more}"

    def changed(self, reports: Mapping[RelPath, FileReport]) -> list[FileReport]:
        """The reports whose lines differ from what was last sent (and remember them as sent)."""
        out = []
        for rel, report in sorted(reports.items()):
            lines = (report.covered, report.missed)
            if self.sent.get(rel) != lines:
                self.sent[rel] = lines
                out.append(report)
        return out
