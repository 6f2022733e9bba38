"""``--format json``: one JSON object per line, as DESIGN.md fixes it.

``{"event": "run_start", "total": N}``, then one ``test_finished`` per test
as it finishes, then ``run_finished`` with a count per status and the exit
code. Lines are 1-based here, as in tracebacks (LSP's 0-based lines are the
server's business). Extra keys may be added; the documented ones never change.
With ``--coverage``, each ``test_finished`` also carries ``coverage`` ({path:
lines}) and ``coverage_partial``, and one ``{"event": "coverage", "path",
"covered", "missed"}`` per file comes just before ``run_finished``.
"""

from __future__ import annotations

import json
from typing import IO, Any

from tach_ls.engine.results import Status, TestResult
from tach_ls.engine.runs import RunSummary


class NdjsonReporter:
    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def _emit(self, event: dict[str, Any]) -> None:
        self.stream.write(json.dumps(event) + "\n")
        self.stream.flush()

    def start(self, total: int) -> None:
        self._emit({"event": "run_start", "total": total})

    def result(self, result: TestResult) -> None:
        self._emit(test_finished(result))

    def finish(self, summary: RunSummary) -> None:
        event: dict[str, Any] = {"event": "run_finished"}
        for status in Status:
            key = "errors" if status is Status.ERROR else status.value
            event[key] = summary.count(status)
        event["duration_ms"] = round(summary.duration_s * 1000.0, 3)
        event["exit_code"] = summary.exit_code
        if summary.errors:
            event["messages"] = summary.errors
        self._emit(event)


def test_finished(result: TestResult) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event": "test_finished",
        "test": result.nodeid,
        "status": result.status.value,
        "duration_ms": result.duration_ms,
        "path": result.path,
        "line": result.line,
        "message": result.message,
    }
    if result.deep_path:
        event["deep_path"], event["deep_line"] = result.deep_path, result.deep_line
    if result.longrepr and result.status.is_failure:
        event["longrepr"] = result.longrepr
    if result.stdout:
        event["stdout"] = result.stdout
    if result.stderr:
        event["stderr"] = result.stderr
    if result.isolation:
        event["isolation"] = result.isolation
    if result.project_writes:
        event["project_writes"] = result.project_writes
    if result.coverage is not None:
        event["coverage"], event["coverage_partial"] = result.coverage, result.coverage_partial
    return event


test_finished.__test__ = False  # type: ignore[attr-defined]
