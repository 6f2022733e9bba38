"""The terminal report: a live progress line, then a summary in pytest's style.

On a terminal, one line redrawn in place (``[ 12/140] 11 passed, 1 failed
tests/test_x.py::test_y``); elsewhere, one character per test with the
percentage done at the end of each line, as pytest-xdist prints. At the end: a FAILURES section with each
failure's report and captured output, the "short test summary info", and the
closing ``==== 1 failed, 11 passed in 0.42s ====`` line.
"""

from __future__ import annotations

import shutil
from typing import IO

from tach_ls.engine.results import Status, TestResult
from tach_ls.engine.runs import RunSummary

CHARS = {
    Status.PASSED: ".",
    Status.FAILED: "F",
    Status.SKIPPED: "s",
    Status.XFAILED: "x",
    Status.XPASSED: "X",
    Status.ERROR: "E",
    Status.CRASHED: "C",
    Status.TIMEOUT: "T",
}
ORDER = [
    Status.FAILED, Status.CRASHED, Status.TIMEOUT, Status.PASSED, Status.SKIPPED,
    Status.XFAILED, Status.XPASSED, Status.ERROR,
]  # fmt: skip
SHORT = {Status.FAILED: "FAILED", Status.ERROR: "ERROR", Status.CRASHED: "CRASHED", Status.TIMEOUT: "TIMEOUT"}


class HumanReporter:
    def __init__(self, stream: IO[str], *, tty: bool | None = None, color: bool | None = None) -> None:
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.color = self.tty if color is None else color
        self.width = shutil.get_terminal_size((80, 24)).columns
        self.total = 0
        self.done: list[TestResult] = []
        self.counts: dict[Status, int] = {}
        self._file = ""
        self._column = 0
        self.before_totals = ""
        """A section printed just before the closing line (the coverage table), as pytest plugins do."""

    def _paint(self, text: str, status: Status | None) -> str:
        if not self.color or status is None:
            return text
        code = "32" if status in (Status.PASSED,) else "33" if status in (Status.SKIPPED, Status.XFAILED, Status.XPASSED) else "31"
        return f"\x1b[{code}m{text}\x1b[0m"

    def start(self, total: int) -> None:
        self.total = total
        self.stream.write(f"tach-ls: {total} test{'s' if total != 1 else ''} selected\n")
        self.stream.flush()

    def result(self, result: TestResult) -> None:
        self.done.append(result)
        self.counts[result.status] = self.counts.get(result.status, 0) + 1
        if self.tty:
            self._progress_line(result)
        else:
            self._progress_chars(result)

    def _progress_line(self, result: TestResult) -> None:
        width = len(str(self.total))
        counts = ", ".join(f"{self.counts[s]} {s.value}" for s in ORDER if self.counts.get(s))
        line = f"[{len(self.done):>{width}}/{self.total}] {counts}  {result.nodeid}"
        line = line[: self.width - 1]
        self.stream.write("\r\x1b[K" + line)
        self.stream.flush()

    def _progress_chars(self, result: TestResult) -> None:
        # Results of parallel workers interleave, so no per-file lines: one character per test,
        # a line per 72 with the percentage done, as pytest-xdist prints.
        self._file = "x"
        self.stream.write(CHARS[result.status])
        self._column += 1
        done = len(self.done)
        if self._column >= 72 or done == self.total:
            percent = 100 * done // max(1, self.total)
            self.stream.write(" " * (72 - self._column) + f" [{percent:3d}%]\n")
            self._column = 0
        self.stream.flush()

    def finish(self, summary: RunSummary) -> None:
        out = self.stream
        out.write("\r\x1b[K" if self.tty else ("\n" if self._column else ""))
        order = {nodeid: i for i, nodeid in enumerate(summary.selected)}
        bad = sorted((r for r in summary.results if r.status.is_failure), key=lambda r: order.get(r.nodeid, len(order)))
        if bad:
            out.write(self._rule("FAILURES") + "\n")
            for result in bad:
                out.write(self._rule(result.nodeid, "_") + "\n")
                out.write((result.longrepr or result.message).rstrip() + "\n")
                for label, text in (("stdout", result.stdout), ("stderr", result.stderr)):
                    if text.strip():
                        out.write(self._rule(f"Captured {label}", "-") + "\n" + text.rstrip() + "\n")
            out.write(self._rule("short test summary info") + "\n")
            for result in bad:
                first = result.message.strip().splitlines()[0] if result.message.strip() else ""
                out.write(f"{SHORT[result.status]} {result.nodeid} - {first}\n")
        for error in summary.errors:
            out.write(f"ERROR: {error}\n")
        if self.before_totals:
            out.write(self.before_totals)
        out.write(self._rule(self.totals(summary), worst=_worst(summary)) + "\n")
        out.flush()

    def totals(self, summary: RunSummary) -> str:
        parts = []
        for status in ORDER:
            n = summary.count(status)
            if n:
                word = "errors" if status is Status.ERROR and n != 1 else status.value
                parts.append(f"{n} {word}")
        text = ", ".join(parts) or "no tests ran"
        if summary.cancelled:
            text += " (interrupted)"
        return f"{text} in {summary.duration_s:.2f}s"

    def _rule(self, title: str, fill: str = "=", worst: Status | None = None) -> str:
        width = min(self.width, 100)
        inner = f" {title} "
        side = max(3, (width - len(inner)) // 2)
        text = fill * side + inner + fill * side
        return self._paint(text, worst) if worst is not None else text


def _worst(summary: RunSummary) -> Status:
    if any(r.status.is_failure for r in summary.results) or summary.exit_code not in (0, 5):
        return Status.FAILED
    if summary.count(Status.PASSED) == 0:
        return Status.SKIPPED
    return Status.PASSED
