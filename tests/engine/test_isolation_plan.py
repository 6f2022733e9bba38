"""``namespaces`` on its own: the plan, its message, and a world entered in a forked child of this process.

No zygote here (``test_isolation.py`` has those): these pin the parts that
decide and describe, and check a world directly from inside (its mount table,
its network, the guard) against the host's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tach_ls.engine import namespaces, nsutil

from .conftest import copy_project

FEATURES = ["tmp", "project", "net", "proc"]


def in_world(plan: namespaces.Plan, check: Callable[[], dict[str, Any]], skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Fork, enter ``plan`` in the child, return what ``check`` saw there (the child's world dies with it)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            applied = namespaces.enter(plan, skip=skip)
            os.write(write_end, json.dumps({"applied": applied, **check()}).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as handle:
        data = handle.read()
    os.waitpid(pid, 0)
    assert data, "the child died before reporting"
    return dict(json.loads(data))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return copy_project("isolation_collide", tmp_path)


def test_probe_finds_every_feature_here(root: Path) -> None:
    """The premise of every engine test of isolation: this machine gives all of it (else they would say so)."""
    plan = namespaces.probe("auto", str(root))
    assert plan.features == FEATURES, plan.describe()
    assert plan.refused == {}


def test_probe_records_a_refusal_with_its_reason(root: Path) -> None:
    plan = namespaces.probe("auto", str(root), refuse={"net"})
    assert plan.features == ["tmp", "project", "proc"]
    assert plan.refused == {"net": "refused by TACH_LS_ISOLATION_REFUSE (a test of the fallbacks)"}


def test_world_mounts_are_private_and_the_host_table_unchanged(root: Path) -> None:
    """The regression: a worker's mounts propagating to the host (a shared mount not made private first)."""
    host = Path("/proc/self/mountinfo").read_text()
    plan = namespaces.probe("auto", str(root), keep=[(str(root.parent), True)])

    def look() -> dict[str, Any]:
        table = Path("/proc/self/mountinfo").read_text().splitlines()
        return {"table": table, "tmp": sorted(os.listdir("/tmp")), "cwd": os.getcwd(), "seed": Path("data/seed.txt").read_text()}

    os.chdir(root)
    seen = in_world(plan, look)
    assert seen["applied"] == FEATURES
    assert not [line for line in seen["table"] if "shared:" in line], "a mount still propagates"
    mounted = {line.split(" - ")[0].split()[4]: line.split(" - ")[1].split()[0] for line in seen["table"]}
    assert mounted["/tmp"] == "tmpfs" and mounted["/dev/shm"] == "tmpfs" and mounted[str(root)] == "overlay"
    assert seen["cwd"] == str(root) and seen["seed"] == "seed\n"
    assert seen["tmp"] == [root.parts[2]], "a fresh /tmp: only the path to the kept folder"
    assert Path("/proc/self/mountinfo").read_text() == host


def test_world_sees_the_run_folder_and_environment_but_writes_only_where_kept(root: Path, tmp_path: Path) -> None:
    """What the engine needs under /tmp stays: its run folder (writable) and environment folders (read-only)."""
    rundir, env = tmp_path / "rundir", tmp_path / "venv"
    rundir.mkdir()
    env.mkdir()
    (env / "lib.py").write_text("x = 1\n")
    plan = namespaces.probe("auto", str(root), keep=[(str(rundir), True), (str(env), False)])

    def look() -> dict[str, Any]:
        (rundir / "w1.out").write_text("from the worker")
        try:
            (env / "lib.py").write_text("changed")
            env_write = "allowed"
        except OSError as exc:
            env_write = exc.strerror or ""
        return {"env": (env / "lib.py").read_text(), "env_write": env_write}

    seen = in_world(plan, look)
    assert (rundir / "w1.out").read_text() == "from the worker"
    assert seen["env"] == "x = 1\n" and seen["env_write"] == "Read-only file system"
    assert (env / "lib.py").read_text() == "x = 1\n"


def test_a_worker_can_keep_the_host_network(root: Path) -> None:
    """A debug worker skips ``net``: the editor's debugger must reach the port it listens on."""
    plan = namespaces.probe("auto", str(root))
    here = {"netns": os.readlink("/proc/self/ns/net"), "mntns": os.readlink("/proc/self/ns/mnt")}

    def look() -> dict[str, Any]:
        return {"netns": os.readlink("/proc/self/ns/net"), "mntns": os.readlink("/proc/self/ns/mnt")}

    full, debug = in_world(plan, look), in_world(plan, look, skip=("net",))
    assert full["applied"] == FEATURES and full["netns"] != here["netns"] and full["mntns"] != here["mntns"]
    assert debug["applied"] == ["tmp", "project", "proc"] and debug["netns"] == here["netns"]


def test_only_paths_a_fresh_tmp_would_hide_are_kept() -> None:
    keep = [("/tmp/run", True), ("/tmp/run/sub", False), ("/usr/lib/python3", False), ("/tmp/proj/.venv", False),
            ("/tmp/env", False), ("/tmp/env/site", True)]  # fmt: skip
    assert namespaces._only_hidden(keep, "/tmp/proj") == [("/tmp/env", False), ("/tmp/run", True), ("/tmp/env/site", True)]


def test_describe_says_what_is_and_is_not_isolated_and_how_to_get_it() -> None:
    plan = namespaces.Plan(level="auto", features=["tmp", "proc"], refused={
        "project": "mount overlay on /p: Operation not permitted", "net": "user namespace refused: unshare(CLONE_NEWUSER): x",
    })  # fmt: skip
    text = plan.describe()
    assert text.startswith("isolation auto: each worker gets a private /tmp and /dev/shm, the /proc guard")
    assert "NOT isolated: the project directory (mount overlay on /p: Operation not permitted; to get it: overlayfs" in text
    assert "the network (user namespace refused: unshare(CLONE_NEWUSER): x; to get it: allow unprivileged user" in text
    assert namespaces.Plan().describe().startswith("isolation off: workers share /tmp, the project")


@pytest.mark.parametrize(
    ("host", "local"),
    [("127.0.0.1", True), ("127.8.9.1", True), ("::1", True), ("[::1]", True), ("localhost", True), ("LOCALHOST", True),
     ("db.localhost", True), ("0.0.0.0", True), ("", True), (b"localhost", True), ("::ffff:127.0.0.1", True),
     ("192.0.2.1", False), ("2001:db8::1", False), ("example.com", False), ("10.0.0.1", False)],
)  # fmt: skip
def test_net_guard_lets_loopback_through(host: Any, local: bool) -> None:
    assert nsutil.is_local(host, frozenset({"localhost"})) is local


def test_overlay_options_escape_separators() -> None:
    text = nsutil.overlay_options("/a,b:c", "/u", "/w", "redirect_dir=on")
    assert text == "lowerdir=/a\\,b\\:c,upperdir=/u,workdir=/w,redirect_dir=on"
