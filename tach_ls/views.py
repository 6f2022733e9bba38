"""Pure conversions from the index (and last results) to what the editor shows.

- `tests_changed`: a file's test tree (module, classes, test functions, and a
  case per parameter set under its function) with LSP ranges;
- `code_lenses`: Run / Debug on every module, class and test, and after a run
  the last status and duration ("passed 3 ms", "failed: AssertionError").

Lines come from the index of the editor's buffer, so lenses follow unsaved edits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tach_ls import protocol
from tach_ls.model import FileIndex, TestItem
from tach_ls.positions import line_range

ResultLookup = Callable[[str], "LastResult | None"]


@dataclass
class LastResult:
    """What the editor should remember of a test's last run."""

    status: str
    duration_ms: float
    message: str
    line: int | None = None  # 0-based, in the current buffer; None: not shown (edited away)
    output: str = ""


def _range(lines: list[str], first: int, last: int) -> protocol.Range:
    (sl, sc), (el, ec) = line_range(lines, first, last)
    return protocol.Range(protocol.Position(sl, sc), protocol.Position(el, ec))


def _function_id(item: TestItem) -> str:
    return item.nodeid[: item.nodeid.index("[")] if item.params_id is not None else item.nodeid


def tests_changed(fi: FileIndex, uri: str, lines: list[str], version: int | None) -> protocol.TestsChanged:
    nodes: list[protocol.TestNode] = []
    for c in fi.collectors:
        nodes.append(
            protocol.TestNode(c.nodeid, c.name, c.kind, uri, _range(lines, c.start_line, c.end_line), c.line - 1, c.parent, markers=c.markers)
        )
    seen_functions: set[str] = set()
    for item in fi.items:
        rng = _range(lines, item.start_line, item.end_line)
        if item.params_id is None:
            nodes.append(
                protocol.TestNode(item.nodeid, item.name, item.kind, uri, rng, item.line - 1, item.parent, item.deselected, item.dynamic, item.markers)
            )
            continue
        func_id = _function_id(item)
        if func_id not in seen_functions:
            seen_functions.add(func_id)
            nodes.append(protocol.TestNode(func_id, item.originalname, item.kind, uri, rng, item.line - 1, item.parent, dynamic=item.dynamic, markers=item.markers))
        nodes.append(
            protocol.TestNode(item.nodeid, f"[{item.params_id}]", "case", uri, rng, item.line - 1, func_id, item.deselected, item.dynamic, item.markers)
        )
    errors = [{"message": e.message, "line": (e.line - 1) if e.line else None, "kind": e.kind} for e in fi.errors]
    return protocol.TestsChanged(uri, version, nodes, errors)


def status_text(results: list[LastResult]) -> str | None:
    """One lens title for the last results of a test (or of a group of tests)."""
    if not results:
        return None
    if len(results) == 1:
        r = results[0]
        if r.status in ("failed", "error", "crashed", "timeout"):
            short = r.message.splitlines()[0] if r.message else r.status
            return f"{r.status}: {short[:60]}"
        return f"{r.status} {_duration(r.duration_ms)}"
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    order = ["failed", "error", "crashed", "timeout", "passed", "skipped", "xfailed", "xpassed"]
    parts = [f"{counts[s]} {s}" for s in order if s in counts]
    total = sum(r.duration_ms for r in results)
    return f"{', '.join(parts)} {_duration(total)}"


def _duration(ms: float) -> str:
    if ms < 1:
        return "<1 ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    return f"{ms / 1000:.1f} s"


@dataclass
class Lens:
    line: int  # 0-based
    title: str
    command: str
    arguments: list[object]


def code_lenses(fi: FileIndex, uri: str, last: ResultLookup) -> list[Lens]:
    lenses: list[Lens] = []
    by_group: dict[str, list[TestItem]] = {}
    for item in fi.items:
        by_group.setdefault(_function_id(item), []).append(item)
    module_results: list[LastResult] = []
    for c in fi.collectors:
        if c.kind == "module":
            continue
        members = [i for i in fi.items if i.nodeid.startswith(c.nodeid + "::")]
        lenses.append(Lens(c.line - 1, "Run class", protocol.CMD_RUN_TESTS, [{"tests": [c.nodeid]}]))
        text = status_text([r for i in members if (r := last(i.nodeid)) is not None])
        if text:
            lenses.append(Lens(c.line - 1, text, protocol.CMD_RUN_TESTS, [{"tests": [c.nodeid]}]))
    for func_id, items in by_group.items():
        line = items[0].line - 1
        lenses.append(Lens(line, "Run", protocol.CMD_RUN_TESTS, [{"tests": [func_id]}]))
        lenses.append(Lens(line, "Debug", protocol.CMD_DEBUG_TEST, [{"test": items[0].nodeid}]))
        results = [r for i in items if (r := last(i.nodeid)) is not None]
        module_results.extend(results)
        text = status_text(results)
        if text:
            lenses.append(Lens(line, text, protocol.CMD_RUN_TESTS, [{"tests": [func_id]}]))
    if fi.items:
        title = "Run file"
        summary = status_text(module_results) if len(module_results) > 1 else None
        lenses.insert(0, Lens(0, title, protocol.CMD_RUN_TESTS, [{"uri": uri}]))
        if summary:
            lenses.insert(1, Lens(0, summary, protocol.CMD_RUN_TESTS, [{"uri": uri}]))
    return lenses
