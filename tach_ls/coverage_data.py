"""Executed lines made into coverage reports: covered, missed and executable lines per file.

Server side. The engine reports which lines ran (``RunCoverage``: per test
and per file); this module adds what only a static analysis knows, the
executable lines, with the same parser and the same exclusions coverage.py
uses for its report (``coverage.parser.PythonParser``, the project's
``exclude_lines``/``exclude_also`` from its coverage config, multi-line
statements folded onto their first line). So "missed" here is coverage.py's
"Missing" for the same run. Parses are cached by (path, mtime, size).

Lines are 1-based here; the LSP layer converts to 0-based.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

COVERAGE_CONFIG_FILES = ((".coveragerc", "ours"), (".coveragerc.toml", "ours"), ("setup.cfg", "[coverage:"),
                         ("tox.ini", "[coverage:"), ("pyproject.toml", "[tool.coverage"))  # fmt: skip
"""coverage.py's own search order for its configuration, and how to tell a file holds some."""


@dataclasses.dataclass(frozen=True)
class FileReport:
    """One file's line coverage for a run."""

    rel: str
    covered: list[int]
    missed: list[int]
    executable: list[int]
    """Statements as coverage.py counts them (excluded lines left out); empty when the file does not parse."""

    @property
    def percent(self) -> float:
        total = len(self.covered) + len(self.missed)
        return 100.0 * len(self.covered) / total if total else 100.0


@dataclasses.dataclass(frozen=True)
class _Parsed:
    statements: frozenset[int]
    first_line: dict[int, int]
    """Lines of multi-line statements -> the statement's first line (coverage.py reports those)."""


_lock = threading.Lock()


def _config_file(root: Path) -> str | bool:
    for name, marker in COVERAGE_CONFIG_FILES:
        path = root / name
        if not path.is_file():
            continue
        if marker == "ours" or marker in path.read_text(encoding="utf-8", errors="replace"):
            return str(path)
    return False


def _coverage(root: Path) -> Any:
    from coverage import Coverage

    try:
        return Coverage(data_file=None, config_file=_config_file(root))
    except Exception:  # noqa: BLE001 (a broken config: coverage.py's defaults)
        return Coverage(data_file=None, config_file=False)


def exclude_regex(root: Path) -> str:
    """The exclusion regex of the project's coverage.py configuration (defaults if it has none)."""
    from coverage.misc import join_regex

    return str(join_regex(_coverage(root).get_exclude_list()))


def measure_globs(root: Path) -> tuple[list[str], list[str]]:
    """(include, omit) of the project's coverage.py ``[run]`` configuration: what the engine measures too."""
    config = _coverage(root).config
    return list(config.run_include or []), list(config.run_omit or [])


@lru_cache(maxsize=4096)
def _parse(path: str, mtime_ns: int, size: int, exclude: str) -> _Parsed | None:
    from coverage.exceptions import CoverageException
    from coverage.parser import PythonParser

    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
        parser = PythonParser(text=text, filename=path, exclude=exclude)
        with _lock:  # the parser is not documented as thread-safe; reports are rare, keep it simple
            parser.parse_source()
    except (CoverageException, OSError, SyntaxError, ValueError, RecursionError):
        return None
    return _Parsed(frozenset(parser.statements), dict(parser.multiline_map))


def parse(path: Path, exclude: str) -> _Parsed | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return _parse(str(path), st.st_mtime_ns, st.st_size, exclude)


def file_report(root: Path, rel: str, executed: Iterable[int], exclude: str) -> FileReport:
    """Covered and missed lines of one file, as coverage.py's report would show them."""
    ran = set(executed)
    parsed = parse(root / rel, exclude) if rel.endswith((".py", ".pyw")) else None
    if parsed is None:
        return FileReport(rel, sorted(ran), [], [])
    translated = {parsed.first_line.get(line, line) for line in ran}
    covered = translated & parsed.statements
    return FileReport(rel, sorted(covered), sorted(parsed.statements - covered), sorted(parsed.statements))


def analyze(root: Path, files: Mapping[str, Iterable[int]], exclude: str | None = None) -> dict[str, FileReport]:
    """``file_report`` for every file of a run (``RunCoverage.files``), sorted by path."""
    regex = exclude_regex(root) if exclude is None else exclude
    return {rel: file_report(root, rel, lines, regex) for rel, lines in sorted(files.items())}


def totals(reports: Mapping[str, FileReport]) -> tuple[int, int]:
    """(covered, executable) lines over all files."""
    covered = sum(len(r.covered) for r in reports.values())
    return covered, covered + sum(len(r.missed) for r in reports.values())
