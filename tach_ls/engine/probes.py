"""Per-test line coverage from probes written into workspace bytecode, without a tracer.

Zygote side: standard library only. ``ProbeBackend`` is a ``tracer``
backend: every workspace code object is rewritten as it is loaded
(``bytecode.instrument``: a probe at each line start adds the line to its
file's set), so recording a line costs four plain instructions and no call.
There is no trace function (which on 3.11 turns off the specialising
interpreter for every frame, library code included) and no per-line callback
(``sys.monitoring``'s, plus re-instrumenting every code object after each
``restart_events()``). A test's lines are what the sets hold when it ends;
``take`` empties them in place, so a test boundary costs nothing to re-arm.

Where code objects are rewritten: ``SourceLoader.get_code`` and
``SourcelessFileLoader.get_code`` (every import from a file, after the
``.pyc`` is written from the original), the ``exec`` of pytest's assertion
rewriter (test modules and conftest files; it marshals its ``.pyc`` before
that ``exec``), ``builtins.compile`` (code compiled under a workspace file's
name: Jinja templates, which coverage.py records too), and, at ``start``,
the functions of workspace modules loaded before it. A string run directly
by ``exec``/``eval`` is compiled in C, past these hooks, and not recorded
(its file name is ``<string>``, outside the workspace, anyway).

Nothing a test does can remove a probe (``sys.settrace(None)``, another
``sys.monitoring`` tool, coverage.py inside a test), so results are never
partial for that reason. A code object the rewriter cannot prove it
understands is left as it was and listed in ``skipped``, and every test from
then on is partial (impact analysis never trusts its lines to exclude it);
no code object of the standard library is skipped on 3.11 or 3.12.
"""

from __future__ import annotations

import __future__

import builtins
import importlib._bootstrap_external as bootstrap_external
import sys
from array import array
from collections.abc import Callable
from types import CodeType
from typing import Any

from .bytecode import Lines, RewriteError, instrument, is_instrumented, supported

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
        self.sets: list[Lines | None] = []
        """File id -> its line set."""
        self.skipped: list[str] = []
        self._by_filename: dict[str, Lines | None] = {}
        self._started = False

    def lines_for(self, filename: str) -> Lines | None:
        """The set a workspace file's probes add to, or None for a file that is not recorded."""
        try:
            return self._by_filename[filename]
        except KeyError:
            pass
        file_id = self.file_id(filename)
        found: Lines | None = None
        if file_id is not None:
            while len(self.sets) <= file_id:
                self.sets.append(None)
            found = self.sets[file_id]
            if found is None:
                found = self.sets[file_id] = Lines()
        self._by_filename[filename] = found
        return found

    def rewrite(self, code: Any) -> Any:
        """``code`` with probes when it is a workspace code object not yet instrumented, else ``code``."""
        if type(code) is not CodeType or is_instrumented(code):
            return code
        lines = self.lines_for(code.co_filename)
        if lines is None:
            return code
        return instrument(code, lines, self.skipped)

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        _hook_loaders(self.rewrite)
        loaded = [getattr(module, "__file__", None) for module in list(sys.modules.values())]
        if not any(isinstance(path, str) and self.lines_for(path) is not None for path in loaded):
            return
        import gc
        import types

        for obj in gc.get_objects():  # workspace functions defined before we started
            if type(obj) is types.FunctionType:
                code = obj.__code__
                if self.lines_for(code.co_filename) is not None and not is_instrumented(code):
                    try:
                        obj.__code__ = self.rewrite(code)
                    except ValueError:  # a closure whose free variables differ: leave it
                        pass

    def take(self) -> tuple[array[int], array[int]]:
        lines, files = array("I"), array("I")
        sets = self.sets
        if not any(sets):  # between two tests, nearly always
            return lines, files
        for file_id, hit in enumerate(sets):
            if hit:
                seen = list(hit)  # file by file: the supervisor sorts each file's lines, cheaper than here
                hit.difference_update(seen)  # in place (the probes hold the set); a line added meanwhile stays
                lines.extend(seen)
                files.extend(array("I", [file_id]) * len(seen))
        return lines, files

    def intact(self) -> bool:
        # Nothing a test does (settrace, sys.monitoring) can remove a probe; but a code object the rewriter
        # left as it was records nothing, so from then on no test's lines can be trusted to be complete.
        return not self.skipped

    def repair(self) -> None:
        pass


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
        return apply(real_compile(source, filename, mode, flags, True, optimize, **kwargs))

    compile.__doc__ = real_compile.__doc__
    return compile
