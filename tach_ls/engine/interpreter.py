"""Finding and checking the project's interpreter (server side).

Order: an explicit ``--python``/setting, else ``VIRTUAL_ENV``, else ``.venv/``
or ``venv/`` in the workspace, else the interpreter running tach-ls. The
check runs the candidate once (a few tens of ms) to learn its version and
whether pytest is importable, so a wrong interpreter is a clear message
naming it rather than a zygote that dies at start.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

SUPPORTED = ((3, 10), (3, 13))


class InterpreterError(RuntimeError):
    """The chosen interpreter cannot run the engine; the message says how to fix it."""


@dataclasses.dataclass(frozen=True)
class Interpreter:
    path: Path
    version: tuple[int, int, int]
    pytest_version: str | None


def _venv_python(venv: Path) -> Path | None:
    for name in ("bin/python", "bin/python3", "Scripts/python.exe"):
        candidate = venv / name
        if candidate.exists():
            return candidate
    return None


def find(root: Path, explicit: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None) -> Path:
    """The project interpreter's path, by the documented order (not yet checked)."""
    env = dict(os.environ) if env is None else env
    if explicit:
        path = Path(explicit).expanduser()
        if path.is_dir():
            found = _venv_python(path)
            if found is None:
                raise InterpreterError(f"--python {path}: a folder without bin/python")
            return found
        return path
    if env.get("VIRTUAL_ENV"):
        found = _venv_python(Path(env["VIRTUAL_ENV"]))
        if found is not None:
            return found
    for name in (".venv", "venv"):
        found = _venv_python(root / name)
        if found is not None:
            return found
    return Path(sys.executable)


_PROBE = (
    "import sys, json, importlib.util as u\n"
    "v = None\n"
    "if u.find_spec('pytest') is not None:\n"
    "    from importlib.metadata import version\n"
    "    try: v = version('pytest')\n"
    "    except Exception: v = '?'\n"
    "print(json.dumps([list(sys.version_info[:3]), v]))\n"
)


def check(path: Path) -> Interpreter:
    """Run ``path`` once: its version and pytest's; InterpreterError with a fix-it message if unusable."""
    try:
        out = subprocess.run(
            [str(path), "-c", _PROBE], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError as exc:
        raise InterpreterError(f"cannot run the project interpreter {path}: {exc}") from exc
    try:
        version, pytest_version = json.loads(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise InterpreterError(
            f"{path} did not answer as a Python interpreter: {(out.stderr or out.stdout).strip()[-300:]}"
        ) from None
    triple = (int(version[0]), int(version[1]), int(version[2]))
    if not SUPPORTED[0] <= triple[:2] <= SUPPORTED[1]:
        raise InterpreterError(
            f"{path} is Python {'.'.join(map(str, triple))}; tach-ls runs tests with CPython 3.10 to 3.13 "
            "(choose another with --python)"
        )
    if pytest_version is None:
        raise InterpreterError(
            f"pytest is not installed in the project interpreter {path}; install it with: {path} -m pip install pytest"
        )
    return Interpreter(path, triple, pytest_version)
