"""tach-ls's custom LSP vocabulary: `tach/*` notifications, `tach.*` commands, one dataclass each.

The VS Code (TypeScript) and Neovim (Lua) clients mirror these names; keep
them in step. Lines and characters are LSP's: 0-based, columns in UTF-16
code units. Every message is sent as `dataclasses.asdict(msg)`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# -- notifications, server -> client --------------------------------------------------
TESTS_CHANGED = "tach/testsChanged"
RUN_STARTED = "tach/runStarted"
TEST_RESULT = "tach/testResult"
RUN_FINISHED = "tach/runFinished"
COVERAGE = "tach/coverage"
STATUS = "tach/status"

# -- commands (workspace/executeCommand) ------------------------------------------------
CMD_RUN_TESTS = "tach.runTests"
CMD_RUN_ALL = "tach.runAll"
CMD_RUN_AFFECTED = "tach.runAffected"
CMD_CANCEL = "tach.cancel"
CMD_DEBUG_TEST = "tach.debugTest"
COMMANDS = [CMD_RUN_TESTS, CMD_RUN_ALL, CMD_RUN_AFFECTED, CMD_CANCEL, CMD_DEBUG_TEST]


@dataclass
class Position:
    line: int
    character: int


@dataclass
class Range:
    start: Position
    end: Position


@dataclass
class TestNode:
    """One node of the test tree: a module, class, test function or parametrized case."""

    id: str  # pytest node id
    label: str
    kind: str  # module, class, function, method
    uri: str
    range: Range  # the whole definition, decorators included
    selection_line: int  # the `def`/`class` line: where lenses and gutter icons go
    parent: str | None
    deselected: bool = False
    dynamic: bool = False
    markers: list[str] = field(default_factory=list)


@dataclass
class TestsChanged:
    """The whole test tree of one file (replaces what the client had for `uri`)."""

    uri: str
    version: int | None
    tests: list[TestNode]
    errors: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class RunStarted:
    run_id: int
    folder: str
    tests: list[str]
    reason: str  # command, save, affected, debug


@dataclass
class TestResultMsg:
    run_id: int
    nodeid: str
    status: str
    duration_ms: float
    message: str
    uri: str | None
    line: int | None  # 0-based; the failing line, else the def line
    output: str = ""
    traceback: str = ""  # pytest's report of a failure (capped), for test-result panels


@dataclass
class RunFinished:
    run_id: int
    passed: int
    failed: int
    skipped: int
    errors: int
    total: int
    duration_ms: float
    cancelled: bool = False
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class CoverageMsg:
    uri: str
    covered: list[int]
    missed: list[int]


@dataclass
class StatusMsg:
    folder: str
    state: str  # starting, ready, rebuilding, failed, stopped
    layer: str = ""
    detail: str = ""


METHOD_TO_MESSAGE_TYPE: dict[str, type] = {
    TESTS_CHANGED: TestsChanged,
    RUN_STARTED: RunStarted,
    TEST_RESULT: TestResultMsg,
    RUN_FINISHED: RunFinished,
    COVERAGE: CoverageMsg,
    STATUS: StatusMsg,
}


def payload(msg: Any) -> dict[str, Any]:
    """The JSON-ready params of a message."""
    return asdict(msg)
