"""The real engine for a workspace: the project's interpreter, checked, and a Supervisor."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tach_ls.cachedir import cache_dir
from tach_ls.settings import Settings


def engine_config(root: Path, python: Path, *, workers: int | None, timeout: float | None, coverage: bool, **options: Any) -> Any:
    """The one way an EngineConfig is made from tach-ls's settings (the server's and the command line's):
    the workspace's cache folder, the default worker count and timeout when unset, and, with
    coverage, the project's coverage.py [run] include/omit globs. `options`: other EngineConfig fields."""
    from tach_ls.engine.supervisor import EngineConfig

    defaults = EngineConfig(root=root)
    config = EngineConfig(
        root=root,
        python=python,
        cache_dir=cache_dir(root),
        workers=workers or defaults.workers,
        timeout=timeout if timeout is not None else defaults.timeout,
        coverage=coverage,
        **options,
    )
    if coverage:
        from tach_ls.coverage_data import measure_globs

        config.coverage_include, config.coverage_omit = measure_globs(root)  # the project's coverage.py [run]
    return config


def make_engine(root: Path, settings: Settings, on_state: Callable[[Any], None]) -> Any:
    from tach_ls.engine import interpreter
    from tach_ls.engine.supervisor import Supervisor

    python = interpreter.find(root, settings.python)
    interpreter.check(python)  # InterpreterError with a fix-it message if unusable
    config = engine_config(
        root, python, workers=settings.workers, timeout=settings.timeout, coverage=settings.coverage,
        isolation=settings.isolation, isolation_scope=settings.isolationScope,
    )  # fmt: skip
    return Supervisor(config, on_state=on_state)
