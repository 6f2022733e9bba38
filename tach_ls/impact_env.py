"""Inputs to impact analysis that come from outside the store: the environment key and git.

The environment key changes when anything that can change every test's
behaviour changes: the interpreter (path and version), lock and requirements
files, and the pytest configuration file. Its change selects everything.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

LOCK_FILES = ("uv.lock", "poetry.lock", "Pipfile.lock", "pdm.lock", "requirements.txt", "requirements-dev.txt", "requirements-test.txt", "constraints.txt")


def env_key(root: Path, python: str, python_version: str, inifile: Path | None) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{python}\0{python_version}\0".encode())
    candidates = [root / name for name in LOCK_FILES] + sorted(root.glob("requirements/*.txt"))
    if inifile is not None:
        candidates.append(inifile)
    for path in candidates:
        try:
            h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        except OSError:
            h.update(path.name.encode() + b"\0-\0")
    return h.hexdigest()


class GitError(RuntimeError):
    """git could not answer (not a repository, unknown revision): the message says which."""


def changed_since(root: Path, rev: str) -> list[str]:
    """Files changed since `rev` (committed, staged, unstaged, and untracked), relative to root."""

    def git(*args: str) -> list[str]:
        proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise GitError(f"git {' '.join(args)}: {proc.stderr.strip() or 'failed'}")
        return [line for line in proc.stdout.splitlines() if line]

    top = Path(git("rev-parse", "--show-toplevel")[0])
    names = git("diff", "--name-only", rev, "--") + git("ls-files", "--others", "--exclude-standard")
    out = []
    for name in dict.fromkeys(names):
        path = top / name
        try:
            out.append(str(path.relative_to(root)))
        except ValueError:
            continue  # outside this workspace
    return out
