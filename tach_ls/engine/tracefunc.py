"""The trace-function line collectors: coverage.py's C tracer (3.10/3.11), else ``sys.settrace``.

Zygote side: standard library only, plus ``coverage.tracer`` when the
project's interpreter has coverage installed. Both fill {co_filename: set of
lines}, which ``take`` empties per test; ``tracer.choose_backend`` picks
between them and ``sys.monitoring`` (see ``tracer``).
"""

from __future__ import annotations

import sys
import threading
import warnings
from collections.abc import Callable
from types import FrameType
from typing import Any

FileIdOf = Callable[[str], "int | None"]


class _LineSets:
    """The shared half of the trace-function backends: {co_filename: set of lines}, taken per test."""

    def __init__(self, file_id: FileIdOf) -> None:
        self.file_id = file_id
        self.data: dict[str, set[int]] = {}
        self._ids: dict[str, int | None] = {}

    def take(self) -> list[tuple[int, frozenset[int]]]:
        """(file id, lines) for each file hit since the last take, in ascending file id order; the sets emptied in place."""
        taken: dict[int, frozenset[int]] = {}
        for filename, hit in list(self.data.items()):
            if not hit:
                continue
            seen = frozenset(hit)
            hit.difference_update(seen)  # in place (the tracer holds the set); a line added meanwhile by a thread stays
            file_id = self._ids.get(filename, -1)
            if file_id == -1:
                file_id = self._ids[filename] = self.file_id(filename)
            if file_id is not None:
                earlier = taken.get(file_id)  # two names of one file (a symlink): one set
                taken[file_id] = seen if earlier is None else earlier | seen
        return sorted(taken.items())


class CTracerBackend(_LineSets):
    """coverage.py's C trace function with our filter and data; one tracer per thread."""

    name = "coverage.py CTracer"
    note = ""

    def __init__(self, file_id: FileIdOf) -> None:
        super().__init__(file_id)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from coverage.tracer import CFileDisposition, CTracer  # ImportError: the caller falls back
        self._tracer_class = CTracer
        self.cache: dict[str, Any] = {}
        self.tracers: list[Any] = []
        self.main: Any = None
        self.messages: list[str] = []

        def should_trace(filename: str, frame: FrameType) -> Any:
            disposition = CFileDisposition()
            disposition.original_filename = disposition.canonical_filename = filename
            disposition.source_filename = filename
            disposition.trace = file_id(filename) is not None
            disposition.reason = ""
            disposition.file_tracer = None
            disposition.has_dynamic_filename = False
            return disposition

        self._should_trace = should_trace

    def _new_tracer(self) -> Any:
        tracer: Any = self._tracer_class()
        tracer.data = self.data
        tracer.should_trace = self._should_trace
        tracer.should_trace_cache = self.cache
        tracer.trace_arcs = False
        tracer.warn = self._warn
        tracer.lock_data = tracer.unlock_data = tuple  # called around each traced call: a C no-op, not a Python one
        tracer.concur_id_func = None
        tracer.file_tracers = {}
        tracer.should_start_context = None
        tracer.switch_context = None
        tracer.disable_plugin = None
        tracer.check_include = None
        self.tracers.append(tracer)
        return tracer

    def _warn(self, message: str, slug: str | None = None, once: bool = False) -> None:
        self.messages.append(message)  # never warnings.warn: filterwarnings=error would fail the test

    def start(self) -> None:
        self.main = self._new_tracer()
        self.main.start()
        threading.settrace(self._thread_start)

    def _thread_start(self, frame: FrameType, event: str, arg: Any) -> Any:
        """First event of a new thread: give it its own tracer, sharing the data."""
        sys.settrace(None)
        tracer = self._new_tracer().start()
        return tracer(frame, event, arg) if tracer is not None else None

    def intact(self) -> bool:
        return sys.gettrace() is self.main

    def repair(self) -> None:
        self.main.start()
        threading.settrace(self._thread_start)


def _line_recorder(add: Callable[[int], None]) -> Callable[[FrameType, str, Any], Any]:
    def local(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line":
            add(frame.f_lineno)
        return local

    return local


class SettraceBackend(_LineSets):
    """A Python trace function: a call into a workspace file gets a local line recorder, anything else none."""

    name = "sys.settrace"

    def __init__(self, file_id: FileIdOf) -> None:
        super().__init__(file_id)
        self.note = (
            f"per-test coverage runs on sys.settrace in {sys.executable}, several times slower than "
            f"coverage.py's C tracer; install it there for faster runs: {sys.executable} -m pip install coverage"
        )
        recorders: dict[str, Any] = {}
        data = self.data

        def global_trace(frame: FrameType, event: str, arg: Any) -> Any:
            filename = frame.f_code.co_filename
            try:
                return recorders[filename]
            except KeyError:
                pass
            recorder = None
            if file_id(filename) is not None:
                recorder = _line_recorder(data.setdefault(filename, set()).add)
            recorders[filename] = recorder
            return recorder

        self.global_trace = global_trace

    def start(self) -> None:
        sys.settrace(self.global_trace)
        threading.settrace(self.global_trace)

    def intact(self) -> bool:
        return sys.gettrace() is self.global_trace

    def repair(self) -> None:
        self.start()
