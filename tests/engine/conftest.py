"""Engine tests: real zygotes and real forks, over every project interpreter.

Every engine test runs once per interpreter in ``PYTHONS``. A missing
interpreter (or one without pytest) fails the test with the command that fixes
it: a silently skipped interpreter is the regression these tests exist for.

Helpers:
- ``project(name[, as_name])``: a copy of ``tests/fixtures/projects/<name>`` in tmp_path;
- ``engine(root, **config)``: a started ``Supervisor`` that is shut down after
  the test, with a check that none of its processes is left behind;
- ``run_tests(sup, *args, **request)``: run and return the summary (bounded);
- ``wait_for(predicate, what)``: poll a condition with a bound, never a bare sleep.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tach_ls.engine.results import Status, TestResult
from tach_ls.engine.runs import RunRequest, RunSummary
from tach_ls.engine.supervisor import (
    EngineConfig,
    EngineState,
    EngineStatus,
    Supervisor,
)

PYTHONS = ("3.11", "3.12")
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "projects"
RUN_BOUND = 60.0


def _find_python(version: str) -> str | None:
    candidates = [shutil.which(f"python{version}")]
    candidates += sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python{version}")))
    if sys.version_info[:2] == tuple(int(p) for p in version.split(".")):
        candidates.insert(0, sys.executable)
    for candidate in candidates:
        if not candidate:
            continue
        probe = subprocess.run([candidate, "-c", "import pytest"], capture_output=True, check=False)
        if probe.returncode == 0:
            return candidate
    return None


@pytest.fixture(scope="session", params=PYTHONS, ids=[f"py{v}" for v in PYTHONS])
def project_python(request: pytest.FixtureRequest) -> str:
    """A project interpreter with pytest; fails loudly (never skips) when missing."""
    version = request.param
    found = _find_python(version)
    if found is None:
        pytest.fail(
            f"engine tests need python{version} with pytest installed; fix with: "
            f"pyenv install {version} && python{version} -m pip install pytest pytest-asyncio coverage debugpy",
            pytrace=False,
        )
    return found


@pytest.fixture
def project(tmp_path: Path) -> Callable[[str], Path]:
    def copy(name: str, as_name: str | None = None) -> Path:
        return copy_project(name, tmp_path, as_name)

    return copy


def processes_mentioning(text: str) -> list[tuple[int, str]]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode("utf-8", "replace")
            with open(f"/proc/{entry}/stat") as handle:
                state = handle.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append((int(entry), cmdline))
    return found


def zombie_children() -> list[int]:
    zombies = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and int(fields[1]) == os.getpid():
            zombies.append(int(entry))
    return zombies


def wait_for(predicate: Callable[[], Any], what: str, bound: float = 20.0) -> Any:
    """Poll ``predicate`` until truthy; fail naming ``what`` after ``bound`` seconds."""
    deadline = time.monotonic() + bound
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {bound}s waiting for {what}")
        time.sleep(0.02)


class Engine:
    """A supervisor under test, with the state changes it reported."""

    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup
        self.states: list[EngineStatus] = []

    def run(self, *args: str, **request: Any) -> RunSummary:
        handle = self.sup.run(RunRequest(args=list(args), **request))
        return handle.wait(RUN_BOUND)

    def result(self, nodeid: str, **request: Any) -> TestResult:
        summary = self.run(nodeid, **request)
        by_id = {r.nodeid: r for r in summary.results}
        assert nodeid in by_id, f"no result for {nodeid}: {summary}"
        return by_id[nodeid]

    def ready(self) -> EngineStatus:
        status = self.sup.wait_ready(RUN_BOUND)
        assert status.state == EngineState.READY, status
        return status


class EngineFactory:
    """Makes started engines and, at the end, shuts them down and checks nothing is left behind."""

    def __init__(self, python: str) -> None:
        self.python = python
        self.made: list[Engine] = []

    def __call__(self, root: Path, **config: Any) -> Engine:
        config.setdefault("python", Path(self.python))
        config.setdefault("workers", 2)
        config.setdefault("cache_dir", root / ".tach-ls")
        holder: list[Engine] = []
        sup = Supervisor(EngineConfig(root=root, **config), on_state=lambda s: holder[0].states.append(s))
        eng = Engine(sup)
        holder.append(eng)
        self.made.append(eng)
        sup.start()
        return eng

    def close(self) -> None:
        for eng in self.made:
            rundir = getattr(eng.sup, "rundir", None)
            eng.sup.shutdown()
            if rundir:
                wait_for(lambda rundir=rundir: not processes_mentioning(rundir), f"no process of {rundir} left")
        wait_for(lambda: not zombie_children(), "no zombie children")


@pytest.fixture
def engine(project_python: str) -> Iterator[EngineFactory]:
    factory = EngineFactory(project_python)
    yield factory
    factory.close()


@pytest.fixture(scope="module")
def module_engine(project_python: str) -> Iterator[EngineFactory]:
    """For modules that share one engine across tests (each test also proves the next run works)."""
    factory = EngineFactory(project_python)
    yield factory
    factory.close()


def copy_project(name: str, parent: Path, as_name: str | None = None) -> Path:
    target = parent / (as_name or name)
    shutil.copytree(FIXTURES / name, target)
    return target


def statuses(summary: RunSummary) -> dict[str, Status]:
    return {r.nodeid: r.status for r in summary.results}
