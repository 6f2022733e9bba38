"""Isolation for an ordinary user, and the kernel refusing features: through ``tach-ls run``.

The ordinary user is made with a user namespace, ``unshare --user
--map-user=1000``: inside it the engine runs as uid 1000 with no capability
at all, so creating a mount or network namespace directly is refused
(``test_the_ordinary_user_has_no_privilege`` checks that premise) and the
engine has to take the unprivileged path: its own user namespace first, then
the rest. (A ``setpriv`` to nobody would need an interpreter outside
``/root``, which nobody can read here; the kernel sees the same thing.)

Refusals are real, not simulated: a parent user namespace lowers its own
``/proc/sys/user/max_*_namespaces`` limits, which bind everything nested in
it and nothing outside, and the kernel then refuses that kind of namespace
with ENOSPC.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from .conftest import copy_project
from .test_isolation import FEATURES, leftovers, tree

pytestmark = pytest.mark.engine

REPO = Path(__file__).resolve().parents[2]
COLLIDE = "tests/test_collide.py"
CLI = [sys.executable, "-c", "import sys; from tach_ls.cli import main; sys.exit(main(sys.argv[1:]))"]
BOUND = 120.0


def require_unshare() -> str:
    found = shutil.which("unshare")
    if found is None:
        pytest.fail("these tests need util-linux's unshare; fix with: apt-get install util-linux", pytrace=False)
    return found


def as_ordinary_user(argv: list[str], limits: dict[str, int] | None = None) -> list[str]:
    """``argv`` as uid 1000 without capabilities, under namespace ``limits`` set by a parent user namespace."""
    inner = [require_unshare(), "--user", "--map-user=1000", "--map-group=1000", "--", *argv]
    if not limits:
        return inner
    script = " && ".join(f"echo {value} > /proc/sys/user/{name}" for name, value in limits.items()) + ' && exec "$@"'
    return ["unshare", "--user", "--map-root-user", "--", "sh", "-c", script, "sh", *inner]


def tach_run(root: Path, python: str, token: str, args: list[str], limits: dict[str, int] | None = None) -> tuple[int, dict[str, dict[str, Any]], str]:
    """(exit code, test_finished events by test name, stderr) of ``tach-ls run --format json`` as the ordinary user."""
    env = dict(os.environ, PYTHONPATH=str(REPO), TACH_ISO_TOKEN=token)
    argv = as_ordinary_user([*CLI, "run", "--format", "json", "--python", python, *args], limits)
    proc = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=BOUND, check=False)
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    finished = {e["test"].split("::", 1)[1]: e for e in events if e["event"] == "test_finished"}
    return proc.returncode, finished, proc.stderr


@pytest.fixture
def token() -> Any:
    name = f"tach-iso-{uuid.uuid4().hex[:12]}"
    yield name
    for path in leftovers(name):
        os.unlink(path)


def test_the_ordinary_user_has_no_privilege() -> None:
    """The premise of this module: as that user, a mount namespace cannot be made without a user namespace."""
    probe = "import ctypes, os; libc = ctypes.CDLL(None, use_errno=True); print(os.getuid(), libc.unshare(0x20000), ctypes.get_errno())"
    out = subprocess.run(as_ordinary_user([sys.executable, "-c", probe]), capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1000", "-1", "1"], out  # EPERM


def test_ordinary_user_gets_every_feature(project_python: str, tmp_path: Path, token: str) -> None:
    """The regression: isolation that only works as root (the user namespace must come first)."""
    root = copy_project("isolation_collide", tmp_path)
    before = tree(root)
    # At most eight node ids: a click's run, one worker (one world) per test.
    names = ["test_tmp[0]", "test_tmp[1]", "test_project[0]", "test_project[1]", "test_escape_through_parent_cwd",
             "test_loopback_and_no_outside_network", "test_whoami", "test_writes_into_the_project"]  # fmt: skip
    code, finished, stderr = tach_run(root, project_python, token,
                                      ["--isolation", "strict", "--show-writes", "-n", "2",
                                       *[f"{COLLIDE}::{n}" for n in names]])  # fmt: skip
    assert set(finished) == set(names), stderr
    failed = {n: e["message"] for n, e in finished.items() if e["status"] != "passed"}
    assert list(failed) == ["test_escape_through_parent_cwd"] and "Permission denied" in failed[
        "test_escape_through_parent_cwd"], (failed, stderr)  # fmt: skip
    assert code == 1
    assert all(e["isolation"] == FEATURES for e in finished.values())
    assert finished["test_whoami"]["stdout"].startswith("uid 1000 ")
    assert finished["test_writes_into_the_project"]["project_writes"] == [
        "A created.txt", "M data/changed.txt", "D data/removed.txt",
    ]  # fmt: skip
    assert tree(root) == before and leftovers(token) == []


REFUSALS = {
    "net": ({"max_net_namespaces": 0}, ["tmp", "project", "proc"], ["the network (unshare(CLONE_NEWNET): No space left"]),
    "mount": ({"max_mnt_namespaces": 0}, ["net", "proc"],
              ["/tmp and /dev/shm (unshare(CLONE_NEWNS): No space left", "the project directory (unshare(CLONE_NEWNS)"]),
    "user": ({"max_user_namespaces": 1}, [], ["user namespace refused: unshare(CLONE_NEWUSER): No space left",
                                             "allow unprivileged user namespaces"]),
}  # fmt: skip


@pytest.mark.parametrize("refused", sorted(REFUSALS))
def test_auto_falls_back_when_the_kernel_refuses(project_python: str, tmp_path: Path, token: str, refused: str) -> None:
    """The regression: one refused namespace disabling all isolation, or failing the run, or going unreported."""
    limits, expected, words = REFUSALS[refused]
    root = copy_project("isolation_collide", tmp_path)
    code, finished, stderr = tach_run(root, project_python, token,
                                      ["--isolation", "auto", f"{COLLIDE}::test_tmp[0]", f"{COLLIDE}::test_whoami"],
                                      limits)  # fmt: skip
    assert code == 0 and set(finished) == {"test_tmp[0]", "test_whoami"}, stderr
    assert all(e.get("isolation", []) == expected for e in finished.values()), finished
    [warning] = [line for line in stderr.splitlines() if line.startswith("tach-ls warning: isolation auto")]
    assert "NOT isolated" in warning and all(w in warning for w in words), warning
    if "tmp" in expected:
        assert leftovers(token) == []


def test_strict_refuses_when_the_kernel_refuses(project_python: str, tmp_path: Path, token: str) -> None:
    root = copy_project("isolation_collide", tmp_path)
    code, finished, stderr = tach_run(root, project_python, token,
                                      ["--isolation", "strict", f"{COLLIDE}::test_whoami"],
                                      {"max_net_namespaces": 0})  # fmt: skip
    assert code == 4 and finished == {}, stderr
    assert "isolation strict: cannot isolate the network: unshare(CLONE_NEWNET): No space left on device" in stderr
    assert "to get it: network namespaces" in stderr and "max_net_namespaces" in stderr
