"""Per-test line collection: warm in the zygote, switched per worker, one test at a time.

Zygote side: standard library only, plus coverage.py's C tracer when the
project's interpreter has coverage installed. The collected layer builds one
``Collector`` from the spec and starts it before pytest reads its config, so
the lines collection runs (imports, conftest files, decorators) are recorded
too; they belong to no test and reach the supervisor as ``coverage_base``.
Every worker forked afterwards inherits the running collector: switching it
to the worker costs attaching a ring, never a new tracer (a fresh
``coverage.Coverage()`` per child costs 40-125 ms). Attribution comes from
the fork and from ``begin_test``/``end_test`` around each item of a batch,
never from per-test contexts (coverage.py's force its slow tracer).

Backends, chosen once per layer:

- bytecode probes (3.11 and 3.12, the default; see ``probes`` and
  ``bytecode``): workspace code objects are rewritten as they are loaded so
  each line start marks its line's byte in a map; no tracer, no callback,
  nothing to re-arm at a test boundary. On Click's suite it costs about a
  fifth of what the C tracer costs on 3.11 (one process) and half of what
  sys.monitoring costs on 3.12 (the same warm engine); on Flask's, 3.12, the
  two tie.
- ``sys.monitoring`` (3.13+, or forced with ``sysmon``): ``LINE`` events are armed on the code objects
  of workspace files only, as they are created: an audit hook sees every
  code object about to run through ``exec`` (each import, each ``exec()``),
  and arms it and the code objects nested in it (its functions, lambdas,
  class bodies). No event is ever set globally, so library code is never
  instrumented, in the zygote or in any worker. The ``LINE`` callback records
  the hit and returns ``DISABLE``, so a line costs one callback per test; at
  each test boundary ``sys.monitoring.restart_events()`` brings the lines
  back, unless another tool is active (it would re-enable that tool's
  disabled events too): then the code objects hit during the test are
  re-armed one by one (their local events set off and on). (A global
  ``PY_START`` event to find workspace code was measured and dropped: each
  forked worker re-instrumented every library function it ran, +2.4 ms on a
  Flask click and +20-45% on a warm Flask run.)
- coverage.py's ``CTracer`` (3.10, when importable; the base layer
  imports it once, see ``preload``): the same C trace function coverage.py
  runs, with our file filter; per test we take the line sets it filled and
  clear them in place.
- ``sys.settrace`` (fallback): a Python trace function that is local to
  workspace frames only; a one-time note (``Collector.note``) says it is
  several times slower.

Only workspace files are recorded: under the root, outside the interpreter's
prefixes and site-packages, outside tach-ls's own engine, filtered by the
configured ``include`` and ``omit`` globs (matched against the path relative
to the root and the absolute one; the server takes them from the project's
coverage.py ``[run]`` configuration). Nothing here calls ``warnings.warn``, so a project's
``filterwarnings = error`` cannot turn the collector into test errors.

A test's hits go to the worker's ring (``coverage_ring``) at ``end_test``, as
one batch ending with the test's end entry. If something replaced the tracer
during the test (``sys.settrace(None)``, another tool), the test is marked
partial and the tracer reinstalled.
"""

from __future__ import annotations

import bisect
import fnmatch
import os
import sys
import warnings
from array import array
from collections.abc import Callable, Sequence
from types import CodeType
from typing import Any, Protocol

from . import coverage_ring, probes, procutil, ring_writer
from .tracefunc import CTracerBackend, SettraceBackend

FileIdOf = Callable[[str], "int | None"]
"""``co_filename`` -> file id, or None for a file that is not recorded."""
Taken = Sequence[tuple[int, coverage_ring.LineSet]]
"""(file id, its lines) per file, ascending file ids."""

TOOL_NAME = "tach-ls"
TOOL_IDS = (4, 3)
"""sys.monitoring tool ids we may take: never COVERAGE_ID, so coverage.py inside a test still works."""
DEFAULT_OMIT = (".tox/*", ".nox/*", ".venv/*", "venv/*", "*/site-packages/*", "*/dist-packages/*")
ENGINE_DIR = os.path.dirname(os.path.realpath(__file__))
CORES = ("auto", "probes", "sysmon", "ctrace", "settrace")


class Backend(Protocol):
    name: str
    note: str

    def start(self) -> None: ...

    def take(self) -> Taken:
        """(file id, lines) for each file hit since the last take, in ascending file id order; and ready to
        record them again."""
        ...

    def intact(self) -> bool:
        """Still installed: nothing replaced or stopped it since ``start``."""
        ...

    def repair(self) -> None: ...


def preload(spec: dict[str, Any]) -> None:
    """In the base layer: import coverage.py's C tracer once, for every collected layer forked later (when it is the core)."""
    options = spec.get("coverage") or {}
    if not options or options.get("core", "auto") not in ("auto", "ctrace"):
        return
    if options.get("core", "auto") == "auto" and (probes.supported() or hasattr(sys, "monitoring")):
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import coverage.tracer  # noqa: F401
        except ImportError:
            pass


def from_spec(spec: dict[str, Any]) -> Collector | None:
    """The collector the spec asks for, or None when coverage is off."""
    options = spec.get("coverage")
    if not options:
        return None
    return Collector(
        spec["root"],
        include=options.get("include") or (),
        omit=options.get("omit") or (),
        core=options.get("core", "auto"),
        ring_entries=int(options.get("ring_entries") or coverage_ring.DEFAULT_CAPACITY),
    )


class Collector:
    """File filter + backend + the worker's ring writer: what the layers and workers call."""

    def __init__(
        self,
        root: str,
        include: Sequence[str] = (),
        omit: Sequence[str] = (),
        core: str = "auto",
        ring_entries: int = coverage_ring.DEFAULT_CAPACITY,
    ) -> None:
        self.root = os.path.realpath(root)
        self.include = tuple(include)
        self.omit = DEFAULT_OMIT + tuple(omit)
        self.prefixes = procutil.environment_prefixes()
        self.ring_entries = ring_entries
        self.paths: list[str] = []
        """File id -> real path."""
        self._ids: dict[str, int] = {}
        self.backend = choose_backend(core, self.file_id)
        self.writer: ring_writer.RingWriter | None = None
        self.dropped = 0

    @property
    def name(self) -> str:
        return self.backend.name

    @property
    def note(self) -> str:
        """A one-time remark for the user (the slow fallback), or ''."""
        return self.backend.note

    def file_id(self, filename: str) -> int | None:
        """The id of a workspace file to record, or None (called by the backends, once per filename)."""
        try:
            if not filename or filename[0] == "<":
                return None
            path = os.path.realpath(os.path.join(self.root, filename))
            if not path.startswith(self.root + os.sep) or path.startswith(ENGINE_DIR + os.sep):
                return None
            if any(path.startswith(prefix) for prefix in self.prefixes):
                return None
            rel = path[len(self.root) + 1 :]
            if self.include and not any(_matches(rel, path, glob) for glob in self.include):
                return None
            if any(_matches(rel, path, glob) for glob in self.omit):
                return None
            found = self._ids.get(path)
            if found is None:
                found = self._ids[path] = len(self.paths)
                self.paths.append(path)
            return found
        except Exception:  # noqa: BLE001 (a callback must never raise into the code under test)
            return None

    def start(self) -> None:
        self.backend.start()

    def take_outside(self) -> dict[str, list[int]]:
        """Zygote side: lines run since the last call, outside any test, as {real path: sorted lines}."""
        return {self.paths[file_id]: sorted(coverage_ring.line_numbers(lines)) for file_id, lines in self.backend.take()}

    def new_ring(self) -> coverage_ring.Ring:
        """A ring for the next child, holding the file ids known so far (call right before the fork)."""
        ring = coverage_ring.create(self.ring_entries)
        ring_writer.RingWriter(ring).publish_files(self.paths)
        return ring

    def attach(self, ring: coverage_ring.Ring) -> None:
        """In the child: hits from now on go to ``ring``."""
        self.writer = ring_writer.RingWriter(ring)

    def begin_test(self, test: int) -> None:
        """Lines run so far (a batch's collection, in spawn mode) are recorded as outside any test."""
        taken = self.backend.take()
        if taken:
            self._write(0, taken, False)

    def end_test(self, test: int) -> None:
        partial = not self.backend.intact()
        if partial:
            self.backend.repair()
        writer, backend = self.writer, self.backend
        if writer is not None and isinstance(backend, probes.ProbeBackend):
            seen = backend.take_whole()
            if seen is not None:  # the map left whole: compared in place (``RingWriter.write_map``)
                writer.publish_files(self.paths)
                self.dropped += writer.write_map(test, seen, backend.spans, partial)
                return
        self._write(test, backend.take(), partial)

    def _write(self, test: int, taken: Taken, partial: bool) -> None:
        writer = self.writer
        if writer is None:
            return
        writer.publish_files(self.paths)
        self.dropped += writer.write_sets(test, taken, partial)


def _matches(rel: str, path: str, glob: str) -> bool:
    """A glob against the path relative to the root, or the absolute one (coverage.py's ``*/tests/*`` style)."""
    return fnmatch.fnmatchcase(rel, glob) or fnmatch.fnmatchcase(path, glob)


def choose_backend(core: str, file_id: FileIdOf) -> Backend:
    """Bytecode probes on 3.11/3.12, else sys.monitoring (3.13+), else coverage.py's CTracer, else sys.settrace.

    ``core`` forces one; a core this interpreter lacks falls to the next in that order.
    """
    if core not in CORES:
        raise ValueError(f"unknown coverage core {core!r}; one of {', '.join(CORES)}")
    if core in ("auto", "probes") and probes.supported():
        return probes.ProbeBackend(file_id)
    if core in ("auto", "sysmon") and hasattr(sys, "monitoring"):
        tool = _free_tool()
        if tool is not None:
            return MonitoringBackend(file_id, tool)
    if core in ("auto", "ctrace", "sysmon"):
        try:
            return CTracerBackend(file_id)
        except ImportError:
            pass
    return SettraceBackend(file_id)


def _free_tool() -> int | None:
    monitoring = sys.monitoring  # type: ignore[attr-defined,unused-ignore]
    for tool in TOOL_IDS:
        if monitoring.get_tool(tool) is None:
            return tool
    return None


class MonitoringBackend:
    """``sys.monitoring``: workspace code armed as it is created, LINE recorded once per test (see the module docstring)."""

    name = "sys.monitoring"
    note = ""

    def __init__(self, file_id: FileIdOf, tool: int) -> None:
        monitoring: Any = sys.monitoring  # type: ignore[attr-defined,unused-ignore]
        self.monitoring = monitoring
        self.tool = tool
        self.hits: list[int] = []
        self.touched: dict[int, CodeType] = {}
        """id -> code object hit since the last take, while another tool is active (see ``take``)."""
        self.file_id = file_id
        self.bases: dict[str, int] = {}
        """co_filename -> file id << 32 (what a hit adds its line to), for armed files only."""
        self.skipped: set[str] = set()
        disable = monitoring.DISABLE
        bases = self.bases
        record_hit, touched = self.hits.append, self.touched

        def line(code: CodeType, line_number: int) -> Any:
            record_hit(bases[code.co_filename] | line_number)
            return disable

        def line_tracking(code: CodeType, line_number: int) -> Any:
            record_hit(bases[code.co_filename] | line_number)
            touched[id(code)] = code
            return disable

        self._line, self._line_tracking = line, line_tracking
        self.alone = True
        """No other tool uses sys.monitoring: a test boundary restarts every disabled event at once."""

    def arm(self, code: CodeType) -> None:
        """LINE events on a workspace code object and the code objects nested in it (functions, lambdas, classes)."""
        filename = code.co_filename
        if filename in self.skipped:
            return
        if filename not in self.bases:
            file_id = self.file_id(filename)
            if file_id is None:
                self.skipped.add(filename)
                return
            self.bases[filename] = file_id << 32
        set_local, tool, line_event = self.monitoring.set_local_events, self.tool, self.monitoring.events.LINE
        stack = [code]
        while stack:
            current = stack.pop()
            set_local(tool, current, line_event)
            stack.extend(const for const in current.co_consts if isinstance(const, CodeType))

    def start(self) -> None:
        monitoring = self.monitoring
        monitoring.use_tool_id(self.tool, TOOL_NAME)
        self.alone = self._alone()
        self._register()
        _on_exec(self.arm)
        loaded = [getattr(module, "__file__", None) for module in list(sys.modules.values())]
        if any(self.file_id(path) is not None for path in loaded if isinstance(path, str)):
            for function in _live_functions():  # workspace code imported before we started
                self.arm(function.__code__)

    def take(self) -> Taken:
        hits = self.hits
        count = len(hits)
        batch = hits[:count]
        del hits[:count]  # two steps, each atomic: a hit appended between them by another thread stays
        self._rearm()
        words = array("I")
        words.frombytes(array("Q", sorted(set(batch))).tobytes())  # two threads may both hit a line first
        lines, files = words[0::2], words[1::2]
        taken: list[tuple[int, coverage_ring.LineSet]] = []
        start = 0
        while start < len(files):
            end = bisect.bisect_left(files, files[start] + 1, start)
            taken.append((files[start], frozenset(lines[start:end])))
            start = end
        return taken

    def _rearm(self) -> None:
        """Bring back the lines the last test disabled, for the next one.

        Alone, ``restart_events()`` does it for every code object at once and
        lazily (each is re-instrumented when it next runs), and the LINE
        callback needs no bookkeeping: on Click that halved the cost of
        per-test coverage. It would also re-enable what another tool disabled
        (coverage.py inside a test, a debugger), so while one is active the
        code objects hit are tracked and re-armed one by one instead.
        """
        monitoring, tool = self.monitoring, self.tool
        alone = self._alone()
        if alone != self.alone:
            self.alone = alone
            self._register()
            if not alone:  # nothing was tracked until now: this once, restart everything
                monitoring.restart_events()
                return
        if alone:
            monitoring.restart_events()
            return
        touched = self.touched
        set_local, line_event = monitoring.set_local_events, monitoring.events.LINE
        for key, code in list(touched.items()):
            del touched[key]  # one by one: a code another thread hits meanwhile stays for the next take
            set_local(tool, code, 0)
            set_local(tool, code, line_event)  # re-instruments the code: its disabled lines fire again

    def intact(self) -> bool:
        return bool(self.monitoring.get_tool(self.tool) == TOOL_NAME)

    def repair(self) -> None:
        try:
            self.monitoring.use_tool_id(self.tool, TOOL_NAME)
        except ValueError:  # someone else holds the id now: nothing more is recorded
            return
        self._register()

    def _alone(self) -> bool:
        return all(self.monitoring.get_tool(other) is None for other in range(6) if other != self.tool)

    def _register(self) -> None:
        """The LINE callback for the current mode: tracking the code it hits only while another tool is active."""
        self.monitoring.register_callback(self.tool, self.monitoring.events.LINE, self._line if self.alone else self._line_tracking)


_exec_listeners: list[Callable[[CodeType], None]] = []


def _on_exec(listener: Callable[[CodeType], None]) -> None:
    """Call ``listener`` with every code object about to run through exec (every import, every exec()).

    An audit hook: it cannot be removed, so there is one per process,
    installed on first use, and it does nothing but a string compare for
    the other events.
    """
    if not _exec_listeners:
        listeners = _exec_listeners

        def hook(event: str, args: tuple[Any, ...]) -> None:
            if event == "exec" and args and type(args[0]) is CodeType:
                for listener_ in listeners:
                    try:
                        listener_(args[0])
                    except Exception:  # noqa: BLE001 (never raise into the code being imported)
                        pass

        sys.addaudithook(hook)
    _exec_listeners.append(listener)


def _live_functions() -> list[Any]:
    import gc
    import types

    return [obj for obj in gc.get_objects() if type(obj) is types.FunctionType]


# -- the layers' call sites ---------------------------------------------------------------


def report_outside(collector: Collector | None, send: Callable[..., None], generation: int, first: bool = False) -> None:
    """Zygote side: send the lines run outside tests since the last call, as ``coverage_base``."""
    if collector is None:
        return
    files = collector.take_outside()
    if files:
        send("coverage_base", generation=generation, files=files)
    if first and collector.note:
        send("warning", text=collector.note)


def ring_for_child(collector: Collector | None, send: Callable[..., None], generation: int) -> coverage_ring.Ring | None:
    """Right before a fork: what the zygote itself ran goes out first, then a ring for the child."""
    if collector is None:
        return None
    report_outside(collector, send, generation)
    return collector.new_ring()


def hand_over(collector: Collector | None, ring: coverage_ring.Ring | None, conn: Any, worker: int) -> None:
    """In the child, once it has a job: the ring's descriptor to the supervisor, hits from now on into it."""
    if collector is None or ring is None:
        return
    from . import wire

    wire.send_fds(conn, "coverage_ring", [ring.fd], worker=worker, pid=os.getpid())
    ring.close_fd()
    collector.attach(ring)
