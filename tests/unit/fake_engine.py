"""A fake engine for unit tests of the server side: runs finish when the test says so.

It honours the same contract as the Supervisor (run/cancel/notify_changed/
shutdown, results through a callback on another thread, a handle with
`wait()`), so workspace and runner logic can be tested deterministically.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tach_ls.engine.results import Status, TestResult
from tach_ls.engine.runs import RunHandle, RunSummary


@dataclass
class FakeRun:
    run_id: int
    args: list[str]
    handle: RunHandle
    on_result: Callable[[TestResult], None] | None
    results: list[TestResult] = field(default_factory=list)

    def finish(self, statuses: dict[str, str] | None = None, cancelled: bool = False) -> None:
        for nodeid, status in (statuses or {}).items():
            result = TestResult(nodeid, Status(status), 1.0, path=nodeid.split("::")[0], line=1)
            self.results.append(result)
            if self.on_result is not None:
                self.on_result(result)
        counts: dict[str, int] = {}
        for r in self.results:
            counts[r.status.value] = counts.get(r.status.value, 0) + 1
        exit_code = 2 if cancelled else (1 if any(r.status.is_failure for r in self.results) else 0)
        self.handle._finish(RunSummary(self.run_id, exit_code, counts, 0.01, self.results, cancelled=cancelled))


class FakeEngine:
    def __init__(self) -> None:
        self.runs: list[FakeRun] = []
        self.started = threading.Event()
        self.changed: list[list[str]] = []
        self.shut = False
        self._next = 0
        self.new_run = threading.Condition()

    def start(self) -> None:
        self.started.set()

    def run(self, request: Any, on_result: Callable[[TestResult], None] | None = None, on_start: Any = None) -> RunHandle:
        self._next += 1
        handle = RunHandle(self._next, self.cancel, debug=bool(getattr(request, "debug", False)))
        with self.new_run:
            self.runs.append(FakeRun(self._next, list(request.args), handle, on_result))
            self.new_run.notify_all()
        return handle

    def wait_runs(self, count: int, timeout: float = 10.0) -> bool:
        """Block until `count` runs were started (for use from an executor thread)."""
        with self.new_run:
            return self.new_run.wait_for(lambda: len(self.runs) >= count, timeout)

    def cancel(self, run_id: int) -> None:
        for run in self.runs:
            if run.run_id == run_id and not run.handle.done:
                run.finish(cancelled=True)

    def notify_changed(self, paths: Any = ()) -> None:
        self.changed.append(list(paths))

    def shutdown(self, timeout: float = 5.0) -> None:
        self.shut = True
