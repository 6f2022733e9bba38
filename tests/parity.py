"""Ask pytest itself: the node ids `pytest --collect-only -q` prints for a folder.

Used by the parity tests, which assert that the static index equals pytest's
answer for the same files. Plugins are not auto-loaded so each call is quick
and independent of what happens to be installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path


def write_tree(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content).lstrip("\n"))


def pytest_collect(cwd: Path, args: list[str] | None = None) -> tuple[list[str], str]:
    """(node ids, full output) of `pytest --collect-only -q` run in `cwd`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *(args or [])],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    ids: list[str] = []
    for line in proc.stdout.splitlines():
        if not line.strip():
            break
        if "::" in line:
            ids.append(line)
    return ids, proc.stdout + proc.stderr
