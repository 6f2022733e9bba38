"""The outcome of one test: the status vocabulary and the result record.

Standard library only: the worker builds results as plain dicts with the
fields of ``TestResult`` and the supervisor turns them back into the
dataclass (``TestResult.from_wire``). Lines are 1-based, as in tracebacks and
in pytest's ``path:line``; the LSP layer converts to 0-based.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

NodeId = str
LineNo = int


class Status(str, enum.Enum):
    """What happened to one test; the values are the contract's words."""

    PASSED = "passed"
    """Setup, call and teardown all passed."""
    FAILED = "failed"
    """The test body failed (or an xfail(strict) test passed)."""
    SKIPPED = "skipped"
    """Skipped by a mark, ``pytest.skip`` or a skipping fixture."""
    XFAILED = "xfailed"
    """Failed as expected by an xfail mark."""
    XPASSED = "xpassed"
    """Passed although marked xfail (not strict)."""
    ERROR = "error"
    """A fixture (setup or teardown) failed, collection failed, or the zygote died under it."""
    CRASHED = "crashed"
    """The worker died without reporting the test: a signal, or ``os._exit``."""
    TIMEOUT = "timeout"
    """The test ran past its time limit; its worker was killed."""

    @property
    def is_failure(self) -> bool:
        """Counts toward pytest's exit code 1."""
        return self in _FAILURES


_FAILURES = frozenset({Status.FAILED, Status.ERROR, Status.CRASHED, Status.TIMEOUT})


@dataclasses.dataclass
class TestResult:
    """One finished test, as streamed to the caller."""

    __test__ = False  # not a pytest test class despite its name

    nodeid: NodeId
    status: Status
    duration_ms: float = 0.0
    message: str = ""
    """One line: the exception, the skip reason, or what killed the worker."""
    longrepr: str = ""
    """The full report, as pytest prints it (capped)."""
    path: str = ""
    """The test's file, relative to the rootdir."""
    line: LineNo | None = None
    """The line that matters in the test file (the failing line, else the def)."""
    deep_path: str = ""
    """Absolute path of the deepest traceback frame inside the workspace."""
    deep_line: LineNo | None = None
    stdout: str = ""
    stderr: str = ""
    worker: int | None = None
    """The pid of the worker that ran it (None when it never started)."""
    isolation: list[str] = dataclasses.field(default_factory=list)
    """The isolation features its worker ran under (``namespaces.FEATURES``); empty: none."""
    project_writes: list[str] = dataclasses.field(default_factory=list)
    """With ``show_writes``: 'A path', 'M path' or 'D path' for what it wrote into the project (discarded)."""
    coverage: dict[str, list[LineNo]] | None = None
    """With coverage on: the lines it executed, {path relative to the workspace root: sorted lines}."""
    coverage_partial: bool = False
    """Its ``coverage`` may miss lines (ring overflow, crash, timeout): never trust it to exclude."""
    opened: list[str] = dataclasses.field(default_factory=list)
    """Workspace files it opened (relative to the root), seen by an audit hook (``deps_audit``)."""
    endpoints: list[str] = dataclasses.field(default_factory=list)
    """Network addresses it connected to: 'host:port' or 'unix:path'."""
    spawned: bool = False
    """It started another process (subprocess, exec, fork), whose code its coverage does not show."""

    @classmethod
    def from_wire(cls, fields: dict[str, Any]) -> TestResult:
        names = _FIELD_NAMES
        if not names:
            names.update(f.name for f in dataclasses.fields(cls))
        kwargs = {k: v for k, v in fields.items() if k in names}
        kwargs["status"] = Status(kwargs["status"])
        return cls(**kwargs)

    def to_wire(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["status"] = self.status.value
        return data


_FIELD_NAMES: set[str] = set()
"""``TestResult``'s field names, filled on first use (a result per test goes through ``from_wire``)."""
