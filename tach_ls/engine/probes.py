"""Per-test line coverage from probes written into workspace bytecode, without a tracer.

Zygote side: standard library only. ``ProbeBackend`` is a ``tracer``
backend: every workspace code object is rewritten as it is loaded
(``bytecode.instrument``: a probe at each line start sets that line's byte
in one ``LineMap``, each recorded file owning a part of it), so recording a
line costs four plain instructions and no call. There is no trace function
(which on 3.11 turns off the specialising interpreter for every frame,
library code included) and no per-line callback (``sys.monitoring``'s, plus
re-instrumenting every code object after each ``restart_events()``). A
test's lines are the bytes set when it ends: ``take`` copies the map and
zeroes it (``memcpy``, ``memset``), and the parts with a byte set are the
files the test ran. ``take_whole`` hands that copy to the ring writer
unsliced: a file that ran as it did in its last test is compared in place
(``RingWriter.write_map``), and only new sets are copied out.

Why bytes and not a set per file, which this backend used first: emptying
a set leaves its slots as dummies that the next test's probes walk past
(or, cleared, a table to grow again), and reading a set back, or comparing
it with one seen before, hops around memory. On Click's suite taking the
sets and refilling them cost about 70 us a test; the map costs about 10.

Where code objects are rewritten: ``SourceLoader.get_code`` and
``SourcelessFileLoader.get_code`` (every import from a file), the ``exec``
of pytest's assertion rewriter (test modules and conftest files),
``builtins.compile`` (code compiled under a workspace file's name: Jinja
templates, which coverage.py records too; and the two above, which compile
through it), and, at ``start``, the functions of workspace modules loaded
before it. A string run directly by ``exec``/``eval`` is compiled in C,
past these hooks, and not recorded (its file name is ``<string>``, outside
the workspace, anyway). Probes never reach a ``.pyc`` file or any other
cache of marshalled code: ``marshal`` writes the code ``compile`` returned
as it was compiled (``_guard_marshal``).

Nothing a test does can remove a probe (``sys.settrace(None)``, another
``sys.monitoring`` tool, coverage.py inside a test), so results are never
partial for that reason. A code object the rewriter cannot prove it
understands is left as it was and listed in ``skipped``, and every test from
then on is partial (impact analysis never trusts its lines to exclude it);
no code object of the standard library is skipped on 3.11 or 3.12.
"""

from __future__ import annotations

import __future__

import bisect
import builtins
import functools
import importlib._bootstrap_external as bootstrap_external
import marshal
import operator
import sys
import weakref
from collections.abc import Callable
from types import CodeType
from typing import Any

from .bytecode import LineMap, RewriteError, instrument, is_instrumented, max_line, supported

__all__ = ["ProbeBackend", "supported"]

FileIdOf = Callable[[str], "int | None"]


# -- the backend --------------------------------------------------------------------------------


class ProbeBackend:
    """Line probes in every workspace code object loaded from now on (see the module docstring)."""

    name = "bytecode probes"
    note = ""

    def __init__(self, file_id: FileIdOf) -> None:
        if not supported():
            raise RewriteError(f"no line probes for Python {sys.version_info[0]}.{sys.version_info[1]}")
        self.file_id = file_id
        self.map = LineMap()
        """Every recorded file's lines, a byte each, file by file: each file's in its own part of the map."""
        self.starts: list[int] = []
        """Where each part of ``map`` starts (ascending)."""
        self.ends: list[int] = []
        """Where each part ends: where the next one starts."""
        self.part_file: list[int] = []
        """The file id each part belongs to."""
        self.skipped: list[str] = []
        self._part_of: dict[str, tuple[int, int]] = {}
        """co_filename -> (base, size) of its file's newest part."""
        self._zeros = memoryview(b"")
        self._whole: list[Any] = []
        self._whole_size = -1
        self._ordered = True
        """Each part a different file, in ascending file id order: a take's parts need no sorting or joining."""
        self._started = False
        self._ids: dict[str, int | None] = {}

    def recorded(self, filename: str) -> bool:
        """A workspace file whose lines are recorded (``file_id`` asked once per file name)."""
        found = self._ids.get(filename, -1)
        if found == -1:
            found = self._ids[filename] = self.file_id(filename)
        return found is not None

    def part_for(self, filename: str, last_line: int) -> int:
        """The base of the part of the map a recorded file's probes mark, reaching line ``last_line``."""
        base, size = self._part_of.get(filename, (-1, -1))
        if last_line < size:
            return base
        file_id = self._ids[filename]
        assert file_id is not None, filename
        # A new part, past every other: the file's first, or a longer version of it (code compiled under its
        # name later); take() joins a file's parts. Room to spare, so a few more lines need no new part.
        size = last_line + 1 + SLACK
        base = len(self.map)
        self.map.extend(bytes(size))  # in place: the probes already written keep pointing at the map
        self._ordered = self._ordered and (not self.part_file or file_id > self.part_file[-1])
        self.starts.append(base)
        self.ends.append(base + size)
        self.part_file.append(file_id)
        self._part_of[filename] = (base, size)
        return base

    def rewrite(self, code: Any) -> Any:
        """``code`` with probes when it is a workspace code object not yet instrumented, else ``code``."""
        if type(code) is not CodeType or not self.recorded(code.co_filename) or is_instrumented(code):
            return code
        return instrument(code, self.map, self.part_for(code.co_filename, max_line(code)), self.skipped)

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        _hook_loaders(self.rewrite)
        loaded = [getattr(module, "__file__", None) for module in list(sys.modules.values())]
        if not any(isinstance(path, str) and self.recorded(path) for path in loaded):
            return
        import gc
        import types

        functions = [  # workspace functions defined before we started
            obj for obj in gc.get_objects() if type(obj) is types.FunctionType and self.recorded(obj.__code__.co_filename)
        ]
        last_lines: dict[str, int] = {}
        for function in functions:
            code = function.__code__
            last_lines[code.co_filename] = max(last_lines.get(code.co_filename, 0), max_line(code))
        for filename, last_line in last_lines.items():
            self.part_for(filename, last_line)  # one part a file, not one for each function further down it
        for function in functions:
            try:
                function.__code__ = self.rewrite(function.__code__)
            except ValueError:  # a closure whose free variables differ: leave it
                pass

    def take(self) -> list[tuple[int, bytes]]:
        """Each file run since the last take, in ascending file id order: (file id, its lines as a map whose
        byte i is 1 when line i ran); the map zeroed for the next test.

        A map up to ``WHOLE_MAP`` bytes is copied and zeroed whole (two
        ``memcpy``-speed calls; Click's suite is 35 KB, half the time of the
        per-file way); past that, only the files that ran are.
        """
        lines = self.map
        size = len(lines)
        if size <= WHOLE_MAP:
            seen = self._copy_whole(size)
            taken = [(file_id, seen[start:end]) for file_id, start, end in self.spans(seen)]
        else:
            zeros, partial = self._zeros_for(size), functools.partial
            spans = self.spans(lines)  # a line marked after it looked at a file is in the next take
            calls: list[Any] = []
            for _, start, end in spans:
                span = slice(start, end)
                zero = partial(lines.__setitem__, span, zeros[: end - start])
                calls += (partial(operator.getitem, lines, span), zero)
            taken = [(file_id, bytes(seen)) for (file_id, _, _), seen in zip(spans, _copy_and_zero(calls))]
        if self._ordered or all(taken[i][0] < taken[i + 1][0] for i in range(len(taken) - 1)):
            return taken
        return _join_parts(taken)

    def take_whole(self) -> bytes | None:
        """``take`` left unsliced, when the map is copied whole and its parts need no joining (else None: call
        ``take``): the map as the test left it, zeroed for the next test. ``spans`` finds its files' parts; the
        writer compares each with its file's last set in place and slices out only the new ones (most of a
        test's files ran as they did in an earlier test), or, when the whole map is the test before it's, sends
        that alone."""
        size = len(self.map)
        if size > WHOLE_MAP or not self._ordered:
            return None
        return self._copy_whole(size)

    def _copy_whole(self, size: int) -> bytes:
        """The map copied, and zeroed (the two calls made again only when the map has grown)."""
        if self._whole_size != size:
            zero = functools.partial(self.map.__setitem__, _ALL, self._zeros_for(size)[:size])
            self._whole, self._whole_size = [functools.partial(bytes, self.map), zero], size
        seen: bytes
        [seen] = _copy_and_zero(self._whole)
        return seen

    def _zeros_for(self, size: int) -> memoryview:
        if len(self._zeros) < size:
            self._zeros = memoryview(bytes(size))
        return self._zeros

    def spans(self, lines: bytes | bytearray) -> list[tuple[int, int, int]]:
        """(file id, start, end) of each part of the map (or of a whole take) with a line marked, in the map's
        order (ascending file ids when the parts are ordered)."""
        starts, ends, part_file, bisect_right = self.starts, self.ends, self.part_file, bisect.bisect_right
        found = []
        at = lines.find(1)  # memchr: the parts no line of which ran cost next to nothing
        while at >= 0:
            part = bisect_right(starts, at) - 1
            end = ends[part]
            found.append((part_file[part], starts[part], end))
            at = lines.find(1, end)
        return found

    def intact(self) -> bool:
        # Nothing a test does (settrace, sys.monitoring) can remove a probe; but a code object the rewriter
        # left as it was records nothing, so from then on no test's lines can be trusted to be complete.
        return not self.skipped

    def repair(self) -> None:
        pass


WHOLE_MAP = 128 << 10
SLACK = 16
"""Lines a part has past its file's last line: code compiled under the file's name later that reaches a little
further needs no part of its own. No more: every byte of the map is copied, zeroed and compared per test."""
_ALL = slice(None)


def _copy_and_zero(calls: list[Any]) -> list[Any]:
    """Run (copy a part of the map, zero it) pairs; the copies. No other thread can mark a line in between.

    The calls run inside one ``map`` over C functions: no bytecode runs
    between a copy and its ``memset``, so no other thread does (the probes
    exist on 3.11 and 3.12 only, where the GIL changes hands between
    bytecodes only; neither call allocates an object the collector tracks,
    so no finalizer runs there either). A line marked by another thread just
    before the copy is in it; just after the zeroing, in the next take.
    """
    done: list[Any] = list(map(operator.call, calls))
    return done[0::2]


def _join_parts(taken: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    """One map per file, in ascending file id order, when a file's lines are in several parts of the map."""
    joined: dict[int, bytes] = {}
    for file_id, part in taken:
        earlier = joined.get(file_id)
        if earlier is not None:
            width = max(len(earlier), len(part))
            part = (int.from_bytes(earlier, "little") | int.from_bytes(part, "little")).to_bytes(width, "little")
        joined[file_id] = part
    return sorted(joined.items())


_rewriters: list[Callable[[Any], Any]] = []


def _hook_loaders(rewrite: Callable[[Any], Any]) -> None:
    """Rewrite code objects as importlib's source loaders hand them out, and as pytest's rewriter runs them."""
    _rewriters.append(rewrite)
    if len(_rewriters) > 1:
        return

    def apply(code: Any) -> Any:
        for each in _rewriters:
            code = each(code)
        return code

    for loader in (bootstrap_external.SourceLoader, bootstrap_external.SourcelessFileLoader):
        original = loader.get_code

        def get_code(self: Any, fullname: str, _original: Any = original) -> Any:
            return apply(_original(self, fullname))

        loader.get_code = get_code  # type: ignore[method-assign]
    builtins.compile = _compiling(apply)
    _guard_marshal()
    try:
        from _pytest.assertion import rewrite as pytest_rewrite
    except ImportError:
        return
    real_exec = exec

    def exec_rewritten(code: Any, globals_: Any = None, locals_: Any = None) -> None:
        __tracebackhide__ = True  # noqa: F841 (pytest leaves this frame out of its reports)
        real_exec(apply(code), globals_, locals_)

    pytest_rewrite.exec = exec_rewritten  # type: ignore[attr-defined]


_FUTURE_FLAGS = 0
for _feature in __future__.all_feature_names:
    _FUTURE_FLAGS |= getattr(__future__, _feature).compiler_flag


def _compiling(apply: Callable[[Any], Any]) -> Callable[..., Any]:
    """``builtins.compile`` that probes the workspace code it returns (templates compiled to Python: Jinja's).

    ``compile`` takes the ``__future__`` flags of the frame that calls it
    unless told not to: this wrapper passes its caller's on, so what is
    compiled is exactly what the real ``compile`` would have made there.
    """
    real_compile = builtins.compile

    def compile(  # noqa: A001 (it is the builtin, wrapped)
        source: Any, filename: Any, mode: str, flags: int = 0, dont_inherit: bool = False, optimize: int = -1,
        **kwargs: Any,
    ) -> Any:
        __tracebackhide__ = True  # noqa: F841 (pytest leaves this frame out of its reports)
        if not dont_inherit:
            flags |= sys._getframe(1).f_code.co_flags & _FUTURE_FLAGS
        compiled = real_compile(source, filename, mode, flags, True, optimize, **kwargs)
        probed = apply(compiled)
        if probed is not compiled:
            _originals[id(probed)] = compiled
            weakref.finalize(probed, _originals.pop, id(probed), None)
        return probed

    compile.__doc__ = real_compile.__doc__
    return compile


_originals: dict[int, CodeType] = {}
"""id of a code object ``compile`` returned with probes -> that code as compiled: what ``marshal`` writes instead."""


def _guard_marshal() -> None:
    """``marshal`` writes code that ``compile`` returned with probes as it was compiled, without them.

    Whoever compiles code may cache it marshalled: importlib's source loader
    and pytest's assertion rewriter write the module they compiled to
    ``__pycache__`` before running it (their ``get_code``/``exec`` hooks
    then find it probed already), Jinja's bytecode cache writes a template's.
    The probes' map would come back from ``marshal`` as plain ``bytes``, and
    every later import of that file, by plain pytest or the next zygote,
    would fail on its first probe.
    """
    marshal.dump, marshal.dumps = _dump, _dumps


def _unprobed(value: Any) -> Any:
    return _originals.get(id(value), value) if type(value) is CodeType else value


def _dump(value: Any, file: Any, *args: Any) -> None:
    _real_dump(_unprobed(value), file, *args)


def _dumps(value: Any, *args: Any) -> bytes:
    return _real_dumps(_unprobed(value), *args)


_real_dump, _real_dumps = marshal.dump, marshal.dumps
_dump.__doc__, _dumps.__doc__ = _real_dump.__doc__, _real_dumps.__doc__
