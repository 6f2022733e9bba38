"""Warm state a worker built that its zygote can build once for every later worker.

Standard library only. A forked worker starts from the zygote's memory, so
whatever its test initialises lazily is paid again in every worker: modules
imported on first use (``encodings.idna`` on Flask's first request) and
regular expressions compiled into ``re``'s cache (werkzeug's URL rules). A
long pytest process pays these once; so should we.

A worker reports what it added (``learned``); the collected layer applies it
(``apply``) between runs and forks its next standby from the warmer state.
Only pure things are learned: modules from outside the workspace (the
project's own modules are never imported early, as their import may be what a
test is about) and regex compilation.
"""

from __future__ import annotations

import importlib
import re
import sys
import warnings
from typing import Any

from . import procutil

MAX_MODULES = 200
MAX_PATTERNS = 256


def snapshot() -> tuple[frozenset[str], frozenset[Any]]:
    """What is warm now: module names and keys of ``re``'s cache."""
    cache = getattr(re, "_cache", {})
    return frozenset(sys.modules), frozenset(cache)


def learned(baseline: tuple[frozenset[str], frozenset[Any]], root: str) -> dict[str, list[Any]]:
    """What this process warmed since ``baseline`` (taken in the zygote before the fork)."""
    modules, patterns = baseline
    prefixes = procutil.environment_prefixes()
    new_modules = []
    for name in list(sys.modules):
        if name in modules or name == "__main__":
            continue
        filename = getattr(sys.modules.get(name), "__file__", None)
        if filename is None and name not in sys.builtin_module_names:
            continue
        if filename is not None and procutil.in_workspace(filename, root, prefixes):
            continue
        new_modules.append(name)
    new_patterns = []
    for key in list(getattr(re, "_cache", {})):
        if key in patterns or not isinstance(key, tuple) or len(key) < 3:
            continue
        pattern, flags = key[1], key[2]
        if isinstance(pattern, (str, bytes)) and isinstance(flags, int):
            as_text = pattern.decode("latin-1") if isinstance(pattern, bytes) else pattern
            new_patterns.append([as_text, flags, isinstance(pattern, bytes)])
    return {"modules": new_modules[:MAX_MODULES], "patterns": new_patterns[:MAX_PATTERNS]}


def apply(modules: list[str], patterns: list[list[Any]], never: list[str]) -> int:
    """Import ``modules`` and compile ``patterns`` here; how many took. ``never``: modules pytest rewrites."""
    done = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in modules:
            if name in sys.modules or any(name == n or name.startswith(n + ".") for n in never):
                continue
            try:
                importlib.import_module(name)
                done += 1
            except BaseException:  # noqa: BLE001 (not importable out of its test's context: leave it to the test)
                sys.modules.pop(name, None)
        for text, flags, is_bytes in patterns:
            try:
                re.compile(text.encode("latin-1") if is_bytes else text, flags)
                done += 1
            except (re.error, TypeError, ValueError, UnicodeError):
                pass
    return done
