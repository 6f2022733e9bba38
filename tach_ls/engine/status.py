"""The engine's configuration and the lifecycle states it reports (server side).

``EngineConfig`` says how to run one workspace's tests; ``EngineState`` and
``EngineStatus`` are what ``tach/status`` shows the editor on each change.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import sys
from collections.abc import Callable
from pathlib import Path

from .runs import RunMode


class EngineState(str, enum.Enum):
    """The zygote's state as the editor sees it (``tach/status``)."""

    STOPPED = "stopped"
    """Not started, or shut down."""
    STARTING = "starting"
    """Starting the base layer or collecting for the first time."""
    READY = "ready"
    """Collected and warm: a run costs a fork and the test."""
    REBUILDING = "rebuilding"
    """A layer went stale or died and is being rebuilt."""
    FAILED = "failed"
    """A layer cannot start (missing pytest, broken config); see the detail."""


@dataclasses.dataclass
class EngineStatus:
    """One state change: which layer moved, and why."""

    state: EngineState
    layer: str
    detail: str = ""
    generation: int = 0


StateCallback = Callable[[EngineStatus], None]


@dataclasses.dataclass
class EngineConfig:
    """How to run one workspace's tests."""

    root: Path
    python: Path = Path(sys.executable)
    cache_dir: Path | None = None
    workers: int = os.cpu_count() or 1
    timeout: float = 300.0
    mode: RunMode = RunMode.FORK
    pytest_args: list[str] = dataclasses.field(default_factory=list)
    collect_args: list[str] = dataclasses.field(default_factory=list)
    """What the collected layer collects (default: the project's testpaths or root)."""
    standby: bool = True
    max_restarts: int = 4
    start_timeout: float = 600.0
    """Seconds the base and collected layers get to start and collect before the engine gives up."""
    env: dict[str, str] | None = None
    isolation: str = "auto"
    """off, auto or strict: how far each worker is isolated (see ``namespaces``)."""
    isolation_scope: str = "batch"
    """batch: the tests of one batch (a module's, as pytest-xdist shares a worker) share one private
    world, so module fixtures may leave state for the next test; test: every test gets its own worker
    and world, seeing the project and /tmp exactly as at the start of the run (module fixtures are then
    set up per test)."""
    show_writes: bool = False
    """Report the files each test wrote into the project (read from the isolation overlay)."""
    coverage: bool = False
    """Collect per-test line coverage (``TestResult.coverage``, ``RunSummary.coverage``)."""
    coverage_include: list[str] = dataclasses.field(default_factory=list)
    """Globs of workspace-relative paths to measure (default: every workspace file)."""
    coverage_omit: list[str] = dataclasses.field(default_factory=list)
    """Globs of workspace-relative paths never measured (venvs and site-packages never are)."""
    coverage_core: str = "auto"
    """auto (sys.monitoring on 3.12+, else coverage.py's CTracer, else sys.settrace), or one of those forced."""

    def coverage_spec(self) -> dict[str, object] | None:
        """The zygote's coverage options (None when off): see ``tracer.from_spec``."""
        if not self.coverage:
            return None
        return {"include": list(self.coverage_include), "omit": list(self.coverage_omit), "core": self.coverage_core}

    def __post_init__(self) -> None:
        # Absolute but not resolved: a venv's python is a symlink to the base interpreter.
        self.python = Path(os.path.abspath(self.python))
        self.root = Path(os.path.abspath(self.root))
