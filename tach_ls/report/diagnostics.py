"""Test results and index errors -> LSP diagnostics for one file.

A failed or erroring test is an Error at its failing line (the assertion)
with the message and a short traceback, and related information pointing
at the deepest frame in the workspace; a crashed or timed-out test is shown
where it is defined; syntax errors found by the index appear at their line.
Passing tests contribute nothing, so a pass clears its diagnostic.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lsprotocol import types

from tach_ls.model import FileIndex
from tach_ls.positions import utf16_len
from tach_ls.uris import path_to_uri

Diagnostic = types.Diagnostic
SOURCE = "tach-ls"
FAILING = {"failed", "error"}
DIED = {"crashed", "timeout"}
TRACEBACK_LINES = 12


def _line_range(lines: list[str], line: int) -> types.Range:
    text = lines[line].rstrip("\r\n") if 0 <= line < len(lines) else ""
    start = len(text) - len(text.lstrip())
    return types.Range(types.Position(line, utf16_len(text[:start])), types.Position(line, utf16_len(text)))


def _short_traceback(longrepr: str) -> str:
    lines = [ln for ln in longrepr.splitlines() if ln.strip()]
    return "\n".join(lines[-TRACEBACK_LINES:])


def diagnostics_for(
    stored: Iterable[Any], fi: FileIndex | None, lines: list[str], root: Path, collect_error: tuple[int, str] | None = None
) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    if collect_error is not None:
        line, message = collect_error
        out.append(types.Diagnostic(range=_line_range(lines, line), message=_short_traceback(message), severity=types.DiagnosticSeverity.Error, source=SOURCE, code="collection"))
    defs = {i.nodeid: i.line - 1 for i in fi.items} if fi else {}
    for s in stored:
        status = s.last.status
        if status not in FAILING and status not in DIED:
            continue
        result = s.result
        if status in DIED:
            line = defs.get(result.nodeid, s.last.line)
        else:
            line = s.last.line
        if line is None:
            continue  # the failing line was edited since the run: do not guess
        message = f"{result.nodeid.split('::', 1)[-1]} {status}: {result.message or status}"
        if status in FAILING and result.longrepr:
            message += "\n\n" + _short_traceback(result.longrepr)
        related = None
        if result.deep_path and result.deep_line:
            deep = Path(result.deep_path)
            if not deep.is_absolute():
                deep = root / deep
            related = [
                types.DiagnosticRelatedInformation(
                    types.Location(path_to_uri(deep), types.Range(types.Position(result.deep_line - 1, 0), types.Position(result.deep_line - 1, 0))),
                    "deepest frame in the workspace",
                )
            ]
        out.append(
            types.Diagnostic(
                range=_line_range(lines, line),
                message=message,
                severity=types.DiagnosticSeverity.Error,
                source=SOURCE,
                code=status,
                related_information=related,
                data={"nodeid": result.nodeid},
            )
        )
    if fi is not None:
        for e in fi.errors:
            line = (e.line - 1) if e.line else 0
            out.append(types.Diagnostic(range=_line_range(lines, line), message=e.message, severity=types.DiagnosticSeverity.Error, source=SOURCE, code=e.kind))
    return out
