"""The probe backend's bookkeeping (the rewrite itself is checked in the project interpreters, tests/engine)."""

from __future__ import annotations

import io
import marshal

import pytest

from tach_ls.engine import bytecode, coverage_ring, probes

pytestmark = pytest.mark.skipif(not bytecode.supported(), reason="bytecode probes are for Python 3.11 and 3.12")


def backend() -> probes.ProbeBackend:
    return probes.ProbeBackend(lambda filename: 0 if filename == "/w/mod.py" else None)


def test_a_test_s_lines_are_taken_once_file_by_file() -> None:
    probe = backend()
    code = probe.rewrite(compile("a = 1\nb = 2\n", "/w/mod.py", "exec"))
    exec(code, {})
    [(file_id, lines)] = probe.take()
    assert file_id == 0 and coverage_ring.line_numbers(lines) == [1, 2]
    assert probe.take() == []  # taken: empty until the code runs again
    assert probe.rewrite(compile("c = 3\n", "/elsewhere.py", "exec")).co_consts == (3, None)  # not recorded


def test_a_code_object_the_rewriter_refuses_makes_every_test_partial(monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: a code object left without probes silently records nothing, so impact analysis would
    trust an incomplete line set and could skip a test the change breaks. Two arms: rewritten, intact;
    refused, never intact again."""
    probe = backend()
    probe.rewrite(compile("a = 1\n", "/w/mod.py", "exec"))
    assert probe.intact() and probe.skipped == []

    def refuse(code: object, lines: object, base: int) -> object:
        raise bytecode.RewriteError("an unknown jump form")

    monkeypatch.setattr(bytecode, "_rewrite_one", refuse)
    probe.rewrite(compile("b = 2\n", "/w/mod.py", "exec"))
    assert not probe.intact() and "an unknown jump form" in probe.skipped[0]


def probe_lines(code: object) -> list[int]:
    """The line each probe of a code object records, in address order."""
    import dis

    found: list[int] = []
    previous = None
    for instruction in dis.get_instructions(code):  # type: ignore[arg-type]
        if instruction.opname == "STORE_SUBSCR" and previous is not None and previous.opname == "LOAD_CONST":
            found.append(previous.argval)  # base + line: this file's part of the map starts at 0
        previous = instruction
    return found


def test_a_jump_within_one_line_has_a_probe_only_where_a_frame_can_stop_mid_line() -> None:
    """Two arms: a function's conditional expression records its line once, at the line's start (the jump
    targets inside it are reached only from that line, in the same frame, so the same test); a generator's
    keeps a probe at each target, since it may be resumed mid-line in a later test."""
    source = "def f(c):\n    return 1 if c else 2\n\ndef g(c):\n    yield 1 if c else 2\n"
    module = backend().rewrite(compile(source, "/w/mod.py", "exec"))
    f, g = (c for c in module.co_consts if getattr(c, "co_name", "") in ("f", "g"))
    assert probe_lines(f) == [2]
    assert probe_lines(g).count(5) > 1
    namespace: dict[str, object] = {}
    exec(module, namespace)
    assert namespace["f"](True) == 1 and namespace["f"](False) == 2  # type: ignore[operator]


def two_file_backend() -> probes.ProbeBackend:
    ids = {"/w/a.py": 0, "/w/b.py": 1}
    return probes.ProbeBackend(ids.get)


@pytest.mark.parametrize("whole", [True, False], ids=["whole-map", "file-by-file"])
def test_a_take_gives_each_file_run_its_lines_once(monkeypatch: pytest.MonkeyPatch, whole: bool) -> None:
    """Regression: a file's part read with its neighbour's lines, or the map not zeroed after a take. Arms: a
    small map, copied and zeroed whole, and a large one (``WHOLE_MAP`` 0 here), only the files that ran."""
    if not whole:
        monkeypatch.setattr(probes, "WHOLE_MAP", 0)
    probe = two_file_backend()
    a = probe.rewrite(compile("x = 1\ny = 2\n", "/w/a.py", "exec"))
    b = probe.rewrite(compile("def f():\n    return 3\n\nz = f()\n", "/w/b.py", "exec"))
    probe.take()  # nothing ran yet
    exec(b, {})
    assert [(f, coverage_ring.line_numbers(s)) for f, s in probe.take()] == [(1, [1, 2, 4])]
    exec(a, {})
    exec(b, {})
    assert [(f, coverage_ring.line_numbers(s)) for f, s in probe.take()] == [(0, [1, 2]), (1, [1, 2, 4])]
    assert probe.take() == [] and not any(probe.map)


def test_a_longer_version_of_a_file_gets_a_part_of_its_own_and_reads_back_as_one_file() -> None:
    """Regression: code compiled later under a file's name with more lines than its part (an IndexError inside
    the code under test), or two parts of one file sent as two files. Arms: the short version, then both."""
    probe = two_file_backend()
    short = probe.rewrite(compile("x = 1\n", "/w/a.py", "exec"))
    longer = probe.rewrite(compile("\n" * 99 + "y = 2\n", "/w/a.py", "exec"))
    assert len(probe.starts) == 2 and probe.part_file == [0, 0]
    exec(short, {})
    assert [(f, coverage_ring.line_numbers(s)) for f, s in probe.take()] == [(0, [1])]
    exec(short, {})
    exec(longer, {})
    assert [(f, coverage_ring.line_numbers(s)) for f, s in probe.take()] == [(0, [1, 100])]


def test_a_whole_take_is_offered_only_when_its_parts_need_no_joining(monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: ``take_whole`` (what the writer compares in place) handing out a file's lines in two parts,
    as two sets of one file, or a map too large to copy whole. Arms: one part a file, its spans cover what
    ``take`` would give; a file with a second part, or a map past ``WHOLE_MAP``: None, and ``take`` as ever."""
    probe = two_file_backend()
    a = probe.rewrite(compile("x = 1\ny = 2\n", "/w/a.py", "exec"))
    b = probe.rewrite(compile("z = 3\n", "/w/b.py", "exec"))
    exec(a, {})
    exec(b, {})
    seen = probe.take_whole()
    assert seen is not None
    spans = probe.spans(seen)
    assert [(f, coverage_ring.line_numbers(seen[start:end])) for f, start, end in spans] == [(0, [1, 2]), (1, [1])]
    assert probe.take() == [] and probe.take_whole() == bytes(len(probe.map))
    monkeypatch.setattr(probes, "WHOLE_MAP", 0)
    assert probe.take_whole() is None
    monkeypatch.undo()
    longer = probe.rewrite(compile("\n" * 99 + "w = 4\n", "/w/a.py", "exec"))
    exec(longer, {})
    exec(a, {})
    assert probe.take_whole() is None
    assert [(f, coverage_ring.line_numbers(s)) for f, s in probe.take()] == [(0, [1, 2, 100])]


def test_no_line_another_thread_marks_is_lost_between_the_copy_and_the_zeroing() -> None:
    """Regression: a line a thread marked between the map's copy and its zeroing was in neither take. A thread
    runs 2,000 lines once each while the main thread takes as fast as it can, thread switches due every
    microsecond; the file's part of the map is megabytes long, so each copy outlasts a switch interval and
    the thread is waiting for the GIL when it ends: together the takes must hold every line."""
    import sys
    import threading

    probe = probes.ProbeBackend(lambda filename: 0 if filename == "/w/mod.py" else None)
    source = "def run():\n" + "    x = sum(range(1000))\n" * 2000 + "\n" * 2_000_000 + "y = 2\n"
    code = probe.rewrite(compile(source, "/w/mod.py", "exec"))
    namespace: dict[str, object] = {}
    exec(code, namespace)
    probe.take()
    seen: set[int] = set()
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        thread = threading.Thread(target=namespace["run"])  # type: ignore[arg-type]
        thread.start()
        while thread.is_alive():
            seen.update(line for _, lines in probe.take() for line in coverage_ring.line_numbers(lines))
        thread.join(30)
    finally:
        sys.setswitchinterval(switch)
    seen.update(line for _, lines in probe.take() for line in coverage_ring.line_numbers(lines))
    assert seen == set(range(2, 2002))


def test_marshal_writes_compiled_code_without_its_probes() -> None:
    """Regression: importlib and pytest's assertion rewriter compile a module through ``compile`` and marshal
    it into ``__pycache__``; the probes' map came back from ``marshal`` as ``bytes``, so plain pytest (and the
    next zygote) failed to import every workspace module after a run with coverage. Arms: the code compile
    returns has probes; what marshal writes has none and runs; code compiled elsewhere is written as it is."""
    probe = backend()
    compile_ = probes._compiling(probe.rewrite)
    code = compile_("a = 1\n", "/w/mod.py", "exec")
    assert bytecode.is_instrumented(code)
    clean = marshal.loads(probes._dumps(code))
    assert not bytecode.is_instrumented(clean)
    namespace: dict[str, object] = {}
    exec(clean, namespace)
    assert namespace["a"] == 1 and probe.take() == []
    buffer = io.BytesIO()
    probes._dump(code, buffer)
    assert buffer.getvalue() == probes._dumps(code)
    other = compile_("b = 2\n", "/elsewhere.py", "exec")
    assert probes._dumps(other) == marshal.dumps(other)
