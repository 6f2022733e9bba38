"""Worker isolation through a real zygote: collisions, escapes, fallbacks, and nothing left behind.

Two-arm tests (STYLE habit 12): the same colliding tests run with isolation
and without; without it they must be seen to collide, or the isolated arm
proves nothing. The fixture project is ``tests/fixtures/projects/isolation_collide``;
``TACH_ISO_TOKEN`` gives its shared paths a name no other run on this
machine uses. The unprivileged path and real kernel refusals are in
``test_isolation_user.py``.
"""

from __future__ import annotations

import os
import signal
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tach_ls.engine.results import Status, TestResult
from tach_ls.engine.runs import RunRequest
from tach_ls.engine.supervisor import EngineState

from .conftest import (
    RUN_BOUND,
    Engine,
    EngineFactory,
    processes_mentioning,
    statuses,
    wait_for,
)

pytestmark = pytest.mark.engine

COLLIDE = "tests/test_collide.py"
FEATURES = ["tmp", "project", "net", "proc"]
IGNORED = {".tach-ls", "__pycache__", ".pytest_cache"}
"""Written by the engine and the collected layer on the host side, never by a worker."""


@pytest.fixture(scope="module", autouse=True)
def require_isolation(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every test here needs all of it: a machine that refuses a feature fails them all, saying which and why."""
    from tach_ls.engine import namespaces

    plan = namespaces.probe("auto", str(tmp_path_factory.mktemp("probe")))
    if plan.refused:
        pytest.fail(f"isolation tests need every feature; this machine says: {plan.describe()}", pytrace=False)


@pytest.fixture
def token() -> Iterator[str]:
    name = f"tach-iso-{uuid.uuid4().hex[:12]}"
    yield name
    for path in leftovers(name):
        os.unlink(path)


def leftovers(token: str) -> list[str]:
    """What the colliding tests left in the host's /tmp and /dev/shm."""
    found = []
    for folder in ("/tmp", "/dev/shm"):
        found += [os.path.join(folder, n) for n in os.listdir(folder) if n.startswith(token)]
    return sorted(found)


def tree(root: Path) -> dict[str, bytes]:
    """Every file of the project and its content (what a test could damage)."""
    files: dict[str, bytes] = {}
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in IGNORED]
        for name in names:
            path = Path(folder, name)
            files[str(path.relative_to(root))] = path.read_bytes()
    return files


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def collide_engine(engine: EngineFactory, root: Path, token: str, **config: Any) -> Engine:
    env = dict(os.environ, TACH_ISO_TOKEN=token, TACH_ISO_PORT=str(config.pop("port", 8080)))
    env.update(config.pop("env", {}))
    eng = engine(root, env=env, **config)
    eng.ready()
    return eng


def ids(name: str, copies: int = 4) -> list[str]:
    return [f"{COLLIDE}::{name}[{i}]" for i in range(copies)]


def by_status(results: list[TestResult]) -> dict[Status, int]:
    counts: dict[Status, int] = {}
    for result in results:
        counts[result.status] = counts.get(result.status, 0) + 1
    return counts


# -- collisions, two arms ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("isolation", ["auto", "off"])
def test_parallel_tests_hold_the_same_port(engine: EngineFactory, project: Any, token: str, isolation: str) -> None:
    """The regression: parallel tests binding one port fail with EADDRINUSE (off shows the collision is real).

    Every copy binds in setup and then waits in its call phase; the copies are
    released only once each one is either holding the port or already failed,
    so with isolation all four held it at the same moment.
    """
    eng = collide_engine(engine, project("isolation_collide"), token, isolation=isolation, port=free_port(), workers=4)
    wanted = ids("test_port")
    done: list[TestResult] = []
    handle = eng.sup.run(RunRequest(args=wanted, workers=4), on_result=done.append)

    def holding() -> list[int] | None:
        try:
            positions = eng.sup.worker_positions()
        except RuntimeError:  # the workers changed while we copied them: look again
            return None
        finished = {r.nodeid for r in done}
        pids = [p.pid for p in positions if p.nodeid in wanted and p.phase == "call" and p.nodeid not in finished]
        return pids if len(pids) + len(finished) == len(wanted) else None

    for pid in wait_for(holding, "every copy holding the port or failed"):
        os.kill(pid, signal.SIGUSR1)
    summary = handle.wait(RUN_BOUND)
    if isolation == "auto":
        assert set(statuses(summary).values()) == {Status.PASSED}, summary
        assert all(r.isolation == FEATURES for r in summary.results)
    else:
        assert by_status(summary.results) == {Status.PASSED: 1, Status.ERROR: 3}, summary
        assert all("Address already in use" in r.message for r in summary.results if r.status is Status.ERROR)


@pytest.mark.parametrize("isolation", ["auto", "off"])
def test_tests_write_the_same_tmp_path(engine: EngineFactory, project: Any, token: str, isolation: str) -> None:
    """The regression: a hard-coded /tmp (and /dev/shm) file shared by tests and left on the host."""
    eng = collide_engine(engine, project("isolation_collide"), token, isolation=isolation)
    summary = eng.run(*ids("test_tmp"))
    if isolation == "auto":
        assert set(statuses(summary).values()) == {Status.PASSED}, summary
        assert leftovers(token) == []
    else:
        assert by_status(summary.results) == {Status.PASSED: 1, Status.FAILED: 3}, summary
        assert all("FileExistsError" in r.message for r in summary.results if r.status is Status.FAILED)
        assert leftovers(token) == [f"/dev/shm/{token}-segment", f"/tmp/{token}-cache.db"]


@pytest.mark.parametrize("isolation", ["auto", "off"])
def test_tests_delete_and_create_project_files(engine: EngineFactory, project: Any, token: str, isolation: str) -> None:
    """The regression: a test that consumes a file of the checkout breaks the next one, and the checkout."""
    root = project("isolation_collide")
    before = tree(root)
    eng = collide_engine(engine, root, token, isolation=isolation)
    summary = eng.run(*ids("test_project"))
    if isolation == "auto":
        assert set(statuses(summary).values()) == {Status.PASSED}, summary
        assert tree(root) == before, "a test changed the developer's checkout"
    else:
        assert by_status(summary.results) == {Status.PASSED: 1, Status.FAILED: 3}, summary
        after = tree(root)
        assert "data/seed.txt" not in after and after["out/result.txt"] == b"done"


@pytest.mark.parametrize("arm", ["auto", "off", "auto-without-proc-guard"])
def test_escape_through_parent_proc_cwd(engine: EngineFactory, project: Any, token: str, arm: str) -> None:
    """The regression: /proc/<ppid>/cwd leads around the overlay into the host's project.

    The third arm refuses only the /proc guard: the overlay alone does not stop
    it, which is what the guard is for.
    """
    root = project("isolation_collide")
    env = {"TACH_LS_ISOLATION_REFUSE": "proc"} if arm == "auto-without-proc-guard" else {}
    eng = collide_engine(engine, root, token, isolation=arm.split("-")[0], env=env)
    result = eng.result(f"{COLLIDE}::test_escape_through_parent_cwd")
    escaped = root / f"ESCAPED-{token}"
    if arm == "auto":
        assert result.status is Status.FAILED and "Permission denied" in result.message, result
        assert not escaped.exists()
    else:
        assert result.status is Status.PASSED, result
        assert escaped.read_text() == "escaped"
        assert result.isolation == ([] if arm == "off" else ["tmp", "project", "net"])


def test_loopback_works_and_outside_network_fails_fast(engine: EngineFactory, project: Any, token: str) -> None:
    """Loopback (v4 and v6) is up in the private network; a connection or a lookup outside fails, saying why."""
    eng = collide_engine(engine, project("isolation_collide"), token)
    result = eng.result(f"{COLLIDE}::test_loopback_and_no_outside_network")
    assert result.status is Status.PASSED, result.longrepr
    assert result.isolation == FEATURES


def test_show_writes_lists_what_each_test_wrote(engine: EngineFactory, project: Any, token: str) -> None:
    """Files written into the project are reported per test, from the overlay's upper layer, and discarded."""
    root = project("isolation_collide")
    before = tree(root)
    eng = collide_engine(engine, root, token, show_writes=True, workers=1)
    summary = eng.run(keyword="test_writes_into_the_project or test_writes_nothing", workers=1)
    results = {r.nodeid.split("::")[1]: r for r in summary.results}
    assert results["test_writes_into_the_project"].worker == results["test_writes_nothing"].worker, "one batch"
    assert results["test_writes_into_the_project"].project_writes == [
        "A created.txt", "M data/changed.txt", "D data/removed.txt",
    ]  # fmt: skip
    assert results["test_writes_nothing"].project_writes == []
    assert tree(root) == before


def test_tests_of_one_batch_share_their_world_as_under_plain_pytest(
    engine: EngineFactory, project: Any, token: str
) -> None:
    """The regression: isolation failing a suite that passes under plain pytest.

    A worker's world lives as long as its batch (a module's tests, with their
    module and session fixtures), so what a module fixture leaves in /tmp or the
    project is there for every test of the module, and gone afterwards.
    """
    root = project("isolation_collide")
    before = tree(root)
    eng = collide_engine(engine, root, token, workers=1)
    summary = eng.run("tests/test_batch.py", workers=1)
    assert len(summary.results) == 3 and set(statuses(summary).values()) == {Status.PASSED}, summary
    assert len({r.worker for r in summary.results}) == 1
    assert tree(root) == before and leftovers(token) == []


# -- fallbacks and strict --------------------------------------------------------------------------------------------


def test_auto_falls_back_feature_by_feature_and_says_so(engine: EngineFactory, project: Any, token: str) -> None:
    """A refused feature is dropped alone: the others still apply, and one warning names what is not isolated."""
    root = project("isolation_collide")
    eng = collide_engine(engine, root, token, env={"TACH_LS_ISOLATION_REFUSE": "project,net"})
    summary = eng.run(*ids("test_tmp"), *ids("test_project", 2))
    assert all(r.isolation == ["tmp", "proc"] for r in summary.results)
    assert by_status([r for r in summary.results if "test_project" in r.nodeid]) == {Status.PASSED: 1, Status.FAILED: 1}
    assert {r.status for r in summary.results if "test_tmp" in r.nodeid} == {Status.PASSED}
    [warning] = [w for w in eng.sup.warnings if w.startswith("isolation auto")]
    assert "NOT isolated: the project directory (refused by TACH_LS_ISOLATION_REFUSE" in warning
    assert "the network (refused by" in warning and "to get it: network namespaces" in warning
    assert "a private /tmp and /dev/shm" in warning.split("NOT isolated")[0]


def test_strict_refuses_to_start_naming_the_missing_feature(engine: EngineFactory, project: Any, token: str) -> None:
    eng = engine(project("isolation_collide"), isolation="strict", env=dict(os.environ, TACH_LS_ISOLATION_REFUSE="net"))
    status = eng.sup.wait_ready(RUN_BOUND)
    assert status.state == EngineState.FAILED
    assert "isolation strict: cannot isolate the network" in status.detail
    assert "to get it: network namespaces" in status.detail and "--isolation auto" in status.detail
    summary = eng.run(f"{COLLIDE}::test_writes_nothing")
    assert summary.exit_code == 4 and summary.results == []


def test_strict_runs_with_every_feature(engine: EngineFactory, project: Any, token: str) -> None:
    eng = collide_engine(engine, project("isolation_collide"), token, isolation="strict")
    assert any("isolation strict: tmp, project, net, proc" in s.detail for s in eng.states), eng.states
    result = eng.result(f"{COLLIDE}::test_writes_nothing")
    assert result.status is Status.PASSED and result.isolation == FEATURES


def test_spawn_mode_isolates_each_batch(engine: EngineFactory, project: Any, token: str) -> None:
    from tach_ls.engine.runs import RunMode

    root = project("isolation_collide")
    before = tree(root)
    eng = collide_engine(engine, root, token, mode=RunMode.SPAWN, workers=2)
    summary = eng.run(*ids("test_tmp", 2), *ids("test_project", 2))
    assert set(statuses(summary).values()) == {Status.PASSED}, summary
    assert all(r.isolation == FEATURES for r in summary.results)
    assert tree(root) == before and leftovers(token) == []


# -- nothing left behind ---------------------------------------------------------------------------------------------

KILLED = f"{COLLIDE}::test_killed_holding_everything"
KILLED_RUNS = 200


def processes_with_env(text: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if text.encode() in Path(f"/proc/{entry}/environ").read_bytes():
                    found.append(int(entry))
            except OSError:
                continue
    return found


def test_killed_workers_leave_no_mount_file_namespace_or_process(engine: EngineFactory, project: Any, token: str) -> None:
    """The regression: a SIGKILLed worker leaking a mount into the host, a file, a namespace or a process.

    Each worker leaves files in /tmp and the project and a child process inside
    its namespaces, then dies by SIGKILL; after 200 of them the host's mount
    table, /tmp and project are as before, and once the engine is shut down no
    process is left in any of the workers' namespaces.
    """
    root = project("isolation_collide")
    mounts, files = Path("/proc/self/mountinfo").read_text(), tree(root)
    eng = collide_engine(engine, root, token)
    base = eng.sup._layers.base
    assert base is not None
    base_mounts = Path(f"/proc/{base.pid}/mountinfo").read_text()
    own_netns = os.readlink("/proc/self/ns/net")
    worker_netns: set[str] = set()
    for _ in range(KILLED_RUNS):
        result = eng.result(KILLED)
        assert result.status is Status.CRASHED and "killed by SIGKILL" in result.message, result
        assert result.isolation == FEATURES
        worker_netns.add(result.stdout.split("netns ", 1)[1].split()[0])
    assert own_netns not in worker_netns and len(worker_netns) > 1
    assert Path("/proc/self/mountinfo").read_text() == mounts
    assert Path(f"/proc/{base.pid}/mountinfo").read_text() == base_mounts
    assert tree(root) == files and leftovers(token) == []
    rundir = eng.sup.rundir
    eng.sup.shutdown()
    wait_for(lambda: not processes_with_env(f"TACH_ISO_TOKEN={token}"), "no process of the killed workers left")
    assert not processes_mentioning(rundir)
    assert Path("/proc/self/mountinfo").read_text() == mounts


SEQUENCE = "tests/test_sequence.py"


def test_scope_test_gives_every_test_the_world_as_the_run_started(engine: EngineFactory, project: Any, token: str) -> None:
    """Two arms on one module: batch scope shares the batch's world (the second test sees the first's
    files, as under plain pytest); test scope gives each its own, so it passes; the host sees neither."""
    root = project("isolation_collide")
    before = tree(root)
    shared = collide_engine(engine, root, token, workers=1)
    summary = shared.run(SEQUENCE, workers=1)
    assert statuses(summary) == {f"{SEQUENCE}::test_1_leaves_state": Status.PASSED, f"{SEQUENCE}::test_2_expects_a_clean_world": Status.FAILED}
    own = collide_engine(engine, root, token, workers=1, isolation_scope="test")
    summary = own.run(SEQUENCE, workers=1)
    assert set(statuses(summary).values()) == {Status.PASSED}, summary
    assert len({r.worker for r in summary.results}) == 2, "one worker per test"
    assert tree(root) == before and leftovers(token) == []
