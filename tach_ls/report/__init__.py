"""Output formats of a run, each a ``Reporter`` fed as results stream in.

- ``human``: a live progress line on a terminal (pytest-style characters
  otherwise) and a pytest-style summary: failures, short summary, totals.
- ``ndjson``: the ``--format json`` contract of DESIGN.md, one object a line:
  ``run_start``, ``test_finished``, ``run_finished``.
- ``junit``: ``--junit-xml FILE``, the JUnit XML that CI systems read.

- ``lcov``: ``--lcov FILE`` (DA/LF/LH per file); ``coverage_table``: the
  coverage table of ``--coverage``.
- ``diagnostics``: results and index errors as LSP diagnostics (server side).

Reporters depend only on ``tach_ls.engine.results`` and ``tach_ls.engine.runs.RunSummary``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from tach_ls.engine.results import TestResult
    from tach_ls.engine.runs import RunSummary


class Reporter(Protocol):
    """Receives a run as it happens."""

    def start(self, total: int) -> None: ...

    def result(self, result: TestResult) -> None: ...

    def finish(self, summary: RunSummary) -> None: ...
