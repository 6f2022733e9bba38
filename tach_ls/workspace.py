"""The state of one workspace folder: its index, engine, open buffers, last results.

The language server keeps one `Workspace` per folder and calls it from its
asyncio loop; everything here runs on that loop except the engine, whose
callbacks arrive on the engine's thread and are handed back to the loop.
What the editor must be told goes through the injected `Client` (so tests
can record it), and the engine comes from an injected factory (so unit
tests can use a fake one).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from tach_ls import protocol
from tach_ls.coverage_index import CoverageIndex
from tach_ls.impact import ImpactStore
from tach_ls.impact_session import environment, open_store, record_run, runnable_ids, select_affected
from tach_ls.index import WorkspaceIndex
from tach_ls.linemap import LineMap
from tach_ls.model import FileIndex, TestItem
from tach_ls.report.diagnostics import Diagnostic, diagnostics_for
from tach_ls.settings import Settings
from tach_ls.uris import path_to_uri, uri_to_path
from tach_ls.views import LastResult, Lens, code_lenses, tests_changed

log = logging.getLogger("tach_ls.workspace")


class Client(Protocol):
    """What a workspace may tell the editor."""

    def notify(self, method: str, params: Any) -> None: ...
    def publish_diagnostics(self, uri: str, version: int | None, diagnostics: list[Diagnostic]) -> None: ...
    def refresh_lenses(self) -> None: ...
    async def progress_begin(self, token: str, title: str) -> bool: ...
    def progress(self, token: str, kind: str, message: str, percentage: int | None = None) -> None: ...
    def show_error(self, message: str) -> None: ...
    def log_warning(self, message: str) -> None: ...


class Engine(Protocol):
    def start(self) -> None: ...
    def run(self, request: Any, on_result: Callable[[Any], None] | None = None, on_start: Any = None) -> Any: ...
    def cancel(self, run_id: int) -> None: ...
    def notify_changed(self, paths: Any = ()) -> None: ...
    def shutdown(self, timeout: float = 5.0) -> None: ...


EngineFactory = Callable[[Path, Settings, Callable[[Any], None]], Engine]


@dataclass
class _Stored:
    """A result as remembered: the record for lenses plus where its diagnostic goes."""

    last: LastResult
    rel: str
    result: Any  # the engine's TestResult


@dataclass
class _Buffer:
    version: int | None
    lines: list[str]


@dataclass
class RunOutcome:
    run_id: int
    summary: Any
    results: list[dict[str, Any]] = field(default_factory=list)


class Workspace:
    def __init__(self, root: Path, settings: Settings, client: Client, engine_factory: EngineFactory) -> None:
        self.root = root
        self.settings = settings
        self.client = client
        self.engine_factory = engine_factory
        self.index = WorkspaceIndex(root)
        self.engine: Engine | None = None
        self.buffers: dict[str, _Buffer] = {}  # rel -> open editor buffer
        self.results: dict[str, _Stored] = {}  # nodeid -> last result
        self.status = protocol.StatusMsg(path_to_uri(root), "stopped")
        self.loop: asyncio.AbstractEventLoop | None = None
        self.changed_since_run: set[str] = set()  # paths saved since the last run started
        self.collect_errors: dict[str, tuple[int, str]] = {}  # rel -> (0-based line, message) from real collection
        self.last_selection: dict[str, str] = {}  # nodeid -> why the last affected run selected it
        self.coverage = CoverageIndex()  # which tests ran each line, and the gutters last sent
        self.coverage_requested = False  # a run asked for coverage: the engine measures from then on
        self.warned: set[str] = set()  # engine warnings already logged to the editor
        try:
            self.impact: ImpactStore | None = open_store(root)
        except Exception:  # a read-only workspace: impact analysis falls back to the conservative rules
            log.exception("impact store unavailable")
            self.impact = None

    @property
    def folder_uri(self) -> str:
        return path_to_uri(self.root)

    # -- the index -------------------------------------------------------------------
    def build_index(self) -> list[protocol.TestsChanged]:
        """Index the workspace (call off the event loop: it reads every test file)."""
        self.index.build()
        # The index lives as long as the folder: out of reach of full collections, which walked
        # it at every one (50-70 ms pauses between keystrokes on seaborn's tests).
        gc.freeze()
        return [self.file_tree(rel) for rel in self.index.files]

    def rel(self, uri: str) -> str:
        return self.index_rel(uri_to_path(uri))

    def index_rel(self, path: Path) -> str:
        from tach_ls.walk import relpath

        return relpath(path, self.index.root)

    def uri_of(self, rel: str) -> str:
        return path_to_uri(self.index.root / rel)

    def lines_of(self, rel: str) -> list[str]:
        buf = self.buffers.get(rel)
        if buf is not None:
            return buf.lines
        try:
            return (self.index.root / rel).read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
        except OSError:
            return []

    def file_tree(self, rel: str) -> protocol.TestsChanged:
        fi = self.index.files.get(rel) or FileIndex(rel)
        buf = self.buffers.get(rel)
        return tests_changed(fi, self.uri_of(rel), self.lines_of(rel), buf.version if buf else None)

    def update_buffer(self, uri: str, text: str, version: int | None) -> list[protocol.TestsChanged]:
        """Re-index an editor buffer; the trees of every file that changed because of it."""
        rel = self.rel(uri)
        new_lines = text.splitlines(keepends=True)
        old = self.buffers.get(rel)
        old_lines = old.lines if old is not None else self.lines_of(rel)
        self.buffers[rel] = _Buffer(version, new_lines)
        self._remap_results(rel, old_lines, new_lines)
        self.index.update_file(self.index.root / rel, text)
        return [self.file_tree(r) for r in self.index.last_changed if r in self.index.files or r == rel]

    def close_buffer(self, uri: str) -> list[protocol.TestsChanged]:
        rel = self.rel(uri)
        self.buffers.pop(rel, None)
        if (self.index.root / rel).exists():
            self.index.update_file(self.index.root / rel)
        else:
            self.index.remove_file(rel)
        return [self.file_tree(rel)]

    def forget_file(self, rel: str) -> protocol.TestsChanged:
        """A file was deleted or renamed away: forget its tests and results (publish() clears the client)."""
        self.index.remove_file(rel)
        prefix = rel + "::"
        for nodeid in [n for n in self.results if n.startswith(prefix)]:
            del self.results[nodeid]
        self.coverage.forget_tests(prefix)
        return self.file_tree(rel)

    def lenses(self, uri: str) -> list[Lens]:
        rel = self.rel(uri)
        fi = self.index.files.get(rel)
        if fi is None:
            return []
        return code_lenses(fi, uri, self._last)

    def hover(self, uri: str, line: int) -> str | None:
        """Markdown for a hover on `line` (0-based): the last result of the test defined there,
        else the tests that executed that line in the last runs with coverage."""
        rel = self.rel(uri)
        fi = self.index.files.get(rel)
        items = [i for i in fi.items if i.start_line - 1 <= line <= i.end_line - 1] if fi is not None else []
        if not items:
            disk = self._buffer_to_disk(rel, line)
            return self.coverage.hover(rel, disk + 1) if disk is not None else None
        parts: list[str] = []
        for item in items[:20]:
            stored = self.results.get(item.nodeid)
            if stored is None:
                parts.append(f"**{item.name}**: not run yet")
                continue
            last = stored.last
            parts.append(f"**{item.name}**: {last.status} in {last.duration_ms:.1f} ms" + (f"\n\n{last.message}" if last.message else ""))
            why = self.last_selection.get(item.nodeid)
            if why:
                parts.append(f"ran because it {why}" if why.startswith(("executed", "read", "connects")) else f"ran because: {why}")
            if last.output.strip():
                tail = "\n".join(last.output.strip().splitlines()[-15:])
                parts.append(f"```\n{tail}\n```")
        return "\n\n".join(parts)

    def _last(self, nodeid: str) -> LastResult | None:
        stored = self.results.get(nodeid)
        return stored.last if stored else None

    def tests_of(self, rel: str) -> list[TestItem]:
        fi = self.index.files.get(rel)
        return list(fi.items) if fi else []

    # -- results and diagnostics -------------------------------------------------------
    def record(self, result: Any) -> _Stored:
        rel = result.path or result.nodeid.split("::", 1)[0]
        line = (result.line - 1) if result.line else None
        if line is not None:
            line = self._disk_to_buffer(rel, line)
        output = (result.stdout + result.stderr)[-4000:]
        stored = _Stored(LastResult(result.status.value, result.duration_ms, result.message, line, output), rel, result)
        self.results[result.nodeid] = stored
        return stored

    def _disk_to_buffer(self, rel: str, line: int) -> int | None:
        return self._map_line(rel, line, to_buffer=True)

    def _buffer_to_disk(self, rel: str, line: int) -> int | None:
        return self._map_line(rel, line, to_buffer=False)

    def _map_line(self, rel: str, line: int, to_buffer: bool) -> int | None:
        """A 0-based line between the file on disk (what ran) and the open buffer (what is shown)."""
        buf = self.buffers.get(rel)
        if buf is None:
            return line
        try:
            disk = (self.index.root / rel).read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
        except OSError:
            return None
        return (LineMap(disk, buf.lines) if to_buffer else LineMap(buf.lines, disk))(line)

    def coverage_messages(self, run_coverage: Any, reports: dict[str, Any]) -> list[protocol.CoverageMsg]:
        """Take a run's coverage (``RunCoverage`` and its ``coverage_data`` reports); the
        ``tach/coverage`` messages for the files whose gutters changed, lines 0-based and
        moved to the open buffer's lines when it has unsaved edits."""
        self.coverage.update(run_coverage.tests, run_coverage.partial)
        out = []
        for report in self.coverage.changed(reports):
            to_buffer = self._disk_to_buffer_map(report.rel)
            covered = [n for n in (to_buffer(line - 1) for line in report.covered) if n is not None]
            missed = [n for n in (to_buffer(line - 1) for line in report.missed) if n is not None]
            out.append(protocol.CoverageMsg(self.uri_of(report.rel), covered, missed))
        return out

    def _disk_to_buffer_map(self, rel: str) -> Callable[[int], int | None]:
        buf = self.buffers.get(rel)
        if buf is None:
            return lambda line: line
        try:
            disk = (self.index.root / rel).read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
        except OSError:
            return lambda line: None
        return LineMap(disk, buf.lines)

    def _remap_results(self, rel: str, old: list[str], new: list[str]) -> None:
        affected = [s for s in self.results.values() if s.rel == rel and s.last.line is not None]
        if not affected:
            return
        mapping = LineMap(old, new)
        for stored in affected:
            assert stored.last.line is not None
            stored.last.line = mapping(stored.last.line)
        self.publish(rel)

    def publish(self, rel: str) -> None:
        uri = self.uri_of(rel)
        buf = self.buffers.get(rel)
        diags = diagnostics_for(
            [s for s in self.results.values() if s.rel == rel],
            self.index.files.get(rel),
            self.lines_of(rel),
            self.index.root,
            self.collect_errors.get(rel),
        )
        self.client.publish_diagnostics(uri, buf.version if buf else None, diags)

    # -- what to run -----------------------------------------------------------------------
    def file_targets(self, uri: str) -> list[str]:
        """Every test of a file: the path itself, so pytest collects it (the index may still be building)."""
        rel = self.rel(uri)
        if rel not in self.index.files and not (self.index.root / rel).is_file():
            raise ValueError(f"{rel} does not exist")
        return [rel]

    def save_targets(self, uri: str) -> list[str] | None:
        """What a save of `uri` runs, per the runOnSave setting: None for nothing, [] for everything."""
        rel = self.rel(uri)
        if self.settings.runOnSave == "file":
            return [rel] if self.tests_of(rel) else None
        if self.settings.runOnSave == "affected":
            return self.affected_targets([str(self.index.root / rel)])
        return None

    def affected_targets(self, paths: list[str] | None) -> list[str] | None:
        """Tests a change to `paths` can affect: None for nothing, [] for everything.

        Conservative until impact analysis knows better: a changed test file
        runs its own tests, tests that failed last time run again, and a
        changed non-test file, whose users are not recorded yet, runs
        everything: an extra test costs little, a hidden failure a lot.
        Without `paths`, the files saved since the last run are the change.
        """
        if paths is None:
            paths = sorted(self.changed_since_run)
        if not paths:
            return None
        rels = [self.index_rel(Path(p)) for p in paths]
        if self.impact is not None and self.impact.known_tests():
            # The engine runs what is on disk (a save just wrote it): compare that, not a buffer
            # whose debounced re-index may not have caught up with the last keystrokes.
            all_tests = [i.nodeid for fi in self.index.files.values() for i in fi.items if not i.deselected]
            items = {i.nodeid: i for fi in self.index.files.values() for i in fi.items}
            selection = select_affected(self.impact, self.index.root, all_tests, self.impact_env(), rels, items=items)
            self.last_selection = {s.nodeid: s.reason for s in selection.selected}
            return runnable_ids(selection.selected, items) or None
        if any(r not in self.index.files for r in rels):
            return []
        failed = [n for n, s in self.results.items() if s.last.status in ("failed", "error", "crashed", "timeout")]
        return list(dict.fromkeys(rels + failed))

    def impact_env(self) -> str:
        return environment(self.index.root, self.settings.python or "", self.index.cfg.inifile)

    def record_impact(self, results: list[Any]) -> None:
        """Store a finished run's dependencies (call off the event loop)."""
        if self.impact is None:
            return
        try:
            record_run(self.impact, self.index.root, results, self.impact_env())
        except Exception:
            log.exception("could not record the run for impact analysis")

    # -- engine -------------------------------------------------------------------------
    def ensure_engine(self) -> Engine:
        if self.engine is None:
            settings = replace(self.settings, coverage=self.measures_coverage(self.settings))
            self.engine = self.engine_factory(self.root, settings, self._on_engine_state)
            self.engine.start()
        return self.engine

    def measures_coverage(self, settings: Settings) -> bool:
        """The engine measures per-test lines when gutters are on, when saves run the affected
        tests (impact analysis is only precise with coverage), or once a run asked for it."""
        return settings.coverage or settings.runOnSave == "affected" or self.coverage_requested

    def request_coverage(self) -> None:
        """A run wants coverage (VS Code's Coverage profile): restart the engine measuring, if it is not."""
        if self.measures_coverage(self.settings):
            return
        self.coverage_requested = True
        if self.engine is not None:
            engine, self.engine = self.engine, None
            engine.shutdown()

    def _on_engine_state(self, status: Any) -> None:
        """Called on the engine's thread."""
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._state_changed, status)

    def _state_changed(self, status: Any) -> None:
        state = getattr(status.state, "value", str(status.state))
        self.status = protocol.StatusMsg(self.folder_uri, state, getattr(status, "layer", ""), getattr(status, "detail", ""))
        self.client.notify(protocol.STATUS, protocol.payload(self.status))
        if state == "ready":
            self._collection_errors_changed(dict(getattr(self.engine, "collect_errors", {}) or {}))
        self.log_engine_warnings()
        if state == "failed":
            self.client.show_error(f"tach-ls: the test engine for {self.root} failed: {self.status.detail}")

    def log_engine_warnings(self) -> None:
        """What the engine warned about (threads alive at fork, isolation that could not apply...),
        once each, in the editor's log."""
        for warning in list(getattr(self.engine, "warnings", None) or []):
            if warning not in self.warned:
                self.warned.add(warning)
                self.client.log_warning(f"tach-ls ({self.root.name}): {warning}")

    def _collection_errors_changed(self, errors: dict[str, str]) -> None:
        """Real collection's errors (import errors...) as diagnostics at their file and line."""
        previous = set(self.collect_errors)
        self.collect_errors = {}
        for nodeid, message in errors.items():
            rel = nodeid.split("::", 1)[0]
            hits = re.findall(rf"{re.escape(rel)}:(\d+)", message)
            self.collect_errors[rel] = (int(hits[-1]) - 1 if hits else 0, message)
        for rel in previous | set(self.collect_errors):
            self.publish(rel)

    def apply_settings(self, settings: Settings) -> None:
        engine_relevant = (settings.python, settings.isolation, settings.isolationScope, settings.workers, settings.timeout, self.measures_coverage(settings))
        previous = (self.settings.python, self.settings.isolation, self.settings.isolationScope, self.settings.workers, self.settings.timeout, self.measures_coverage(self.settings))
        self.settings = settings
        if engine_relevant != previous and self.engine is not None:
            engine, self.engine = self.engine, None
            engine.shutdown()

    def shutdown(self) -> None:
        if self.impact is not None:
            self.impact.close()
            self.impact = None
        if self.engine is not None:
            self.engine.shutdown()
            self.engine = None
