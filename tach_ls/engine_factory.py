"""The real engine for a workspace: the project's interpreter, checked, and a Supervisor."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tach_ls.cachedir import cache_dir
from tach_ls.settings import Settings


def make_engine(root: Path, settings: Settings, on_state: Callable[[Any], None]) -> Any:
    from tach_ls.engine import interpreter
    from tach_ls.engine.supervisor import EngineConfig, Supervisor

    python = interpreter.find(root, settings.python)
    interpreter.check(python)  # InterpreterError with a fix-it message if unusable
    defaults = EngineConfig(root=root)
    include, omit = _coverage_globs(root) if settings.coverage else ([], [])
    config = EngineConfig(
        root=root,
        python=python,
        cache_dir=cache_dir(root),
        workers=settings.workers or defaults.workers,
        timeout=settings.timeout,
        isolation=settings.isolation,
        isolation_scope=settings.isolationScope,
        coverage=settings.coverage,
        coverage_include=include,
        coverage_omit=omit,
    )
    return Supervisor(config, on_state=on_state)


def _coverage_globs(root: Path) -> tuple[list[str], list[str]]:
    from tach_ls.coverage_data import measure_globs

    return measure_globs(root)
