"""Rewriting a code object with line probes: decoding, placing probes, re-encoding the tables.

Zygote side: standard library only. ``instrument(code, lines, base)``
returns a copy of ``code`` (and of the code objects nested in it) where the
first instruction of every line, every jump target and every exception
handler is preceded by a probe, four instructions that set byte
``base + line`` of ``lines`` (a ``LineMap``, a bytearray the code object
holds as a constant) to 1::

    LOAD_CONST   1
    LOAD_CONST   <lines>
    LOAD_CONST   <base + line number>
    STORE_SUBSCR

A byte store: no hashing, no reference counts, no allocation, and emptying
the map for the next test is one ``memset`` (see ``probes``).

Nothing else changes: jumps are retargeted onto the probe in front of their
old target (so a loop head records its line on every pass), jumps whose
argument outgrows its ``EXTENDED_ARG`` prefixes get more, the exception table
and the location table are re-encoded for the new offsets, and the stack size
grows by two. Instructions are copied in runs between probes and jumps, so a
rewrite costs about as much as decoding the code once.

Which instructions get a probe mirrors when CPython reports a ``line`` event
to a trace function (what coverage.py records): the first instruction after
the frame's ``RESUME``, an instruction whose line differs from the last line
before it in address order, and any instruction control can jump to (except
the ``END_ASYNC_FOR`` closing an ``async for``, whose line CPython does not
report again). A jump within one line (a comprehension's loop, a conditional
expression) needs no probe at its target: the frame recorded that line when
it entered it, in the same test; except in a generator or coroutine, whose
frame may stop mid-line in one test and go on in the next. A probe never goes between instructions the interpreter treats
as a unit (``KW_NAMES``/``PRECALL`` and the call they prefix, the ``END_FOR``
a ``FOR_ITER`` skips when exhausted, a ``RESUME``); that line's probe moves to
its next instruction.

Everything is checked against what ``dis`` says of the original (every jump
lands on an instruction start, every table entry too); a code object that
fails a check raises ``RewriteError`` and is left as it was.
"""

from __future__ import annotations

import collections
import dis
import opcode
import sys
from bisect import bisect_left
from collections.abc import Iterator
from itertools import accumulate, groupby
from types import CodeType
from typing import NamedTuple

Position = tuple["int | None", "int | None", "int | None", "int | None"]
LineNo = int

VERSIONS = ((3, 11), (3, 12))
"""Bytecode formats this rewriter knows; other versions use ``sys.monitoring`` or a tracer."""


class LineMap(bytearray):
    """Executed lines, a byte each: a bytearray a code object can hold as a constant (hashed and compared by
    identity). It only ever grows, in place, so the probes of every code object keep pointing at it."""

    __hash__ = object.__hash__  # type: ignore[assignment]

    def __eq__(self, other: object) -> bool:
        return self is other

    def __ne__(self, other: object) -> bool:
        return self is not other


class RewriteError(Exception):
    """The code object uses a form this rewriter does not know; it stays as it was."""


def supported() -> bool:
    return sys.version_info[:2] in VERSIONS


# The tables below describe 3.11's and 3.12's bytecode. Other versions only import this module (the
# zygote does, on every Python): names they lack get -1, and nothing here is used there.
_OP = collections.defaultdict(lambda: -1, opcode.opmap)
_EXTENDED_ARG = _OP["EXTENDED_ARG"]
_LOAD_CONST, _STORE_SUBSCR = _OP["LOAD_CONST"], _OP["STORE_SUBSCR"]
_RESUME = _OP["RESUME"]
_END_ASYNC_FOR = _OP["END_ASYNC_FOR"]
_CACHES: list[int] = list(getattr(dis, "_inline_cache_entries", None) or [0] * 256) if supported() else [0] * 256
_STEP = [2 + 2 * count for count in _CACHES]
"""Bytes from an opcode to the next instruction: itself and its inline caches."""
_JUMPS = frozenset(dis.hasjrel)
_BACKWARD = frozenset(op for op in _JUMPS if "BACKWARD" in dis.opname[op])
_JUMP_BASE_CACHES = 1 if sys.version_info >= (3, 12) else 0
"""3.12+: a relative jump counts from the end of its inline caches; 3.11: from the instruction after it."""
_NO_PROBE_AFTER = frozenset(_OP[n] for n in ("KW_NAMES", "PRECALL", "YIELD_VALUE") if n in _OP)
_NO_PROBE_BEFORE = frozenset(_OP[n] for n in ("RESUME", "END_FOR", "PRECALL", "CALL") if n in _OP)
_SUSPENDS = 0x20 | 0x80 | 0x100 | 0x200
"""CO_GENERATOR, CO_COROUTINE, CO_ITERABLE_COROUTINE, CO_ASYNC_GENERATOR (``inspect``'s, without importing it)."""
_PROBE_STACK = 3


class _Code(NamedTuple):
    """A decoded code object: one entry per instruction (EXTENDED_ARG prefixes folded in)."""

    starts: list[int]
    """Offset of each instruction's first code unit, prefixes included (what jumps and tables point at)."""
    ops: list[int]
    args: list[int]
    caches: list[int]
    prefixes: list[int]


def decode(raw: bytes) -> _Code:
    starts: list[int] = []
    ops: list[int] = []
    args: list[int] = []
    prefixes: list[int] = []
    step, extended = _STEP, _EXTENDED_ARG
    i, size = 0, len(raw)
    while i < size:
        op = raw[i]
        if op != extended:
            starts.append(i)
            ops.append(op)
            args.append(raw[i + 1])
            prefixes.append(0)
            i += step[op]
            continue
        start, arg, prefix = i, 0, 0
        while op == extended:
            arg = (arg | raw[i + 1]) << 8
            prefix += 1
            i += 2
            op = raw[i]
        starts.append(start)
        ops.append(op)
        args.append(arg | raw[i + 1])
        prefixes.append(prefix)
        i += step[op]
    return _Code(starts, ops, args, [_CACHES[op] for op in ops], prefixes)


def jump_target(own: int, op: int, arg: int, caches: int) -> int:
    """Where a relative jump whose opcode is at ``own`` lands."""
    base = own + 2 + 2 * caches * _JUMP_BASE_CACHES
    return base - 2 * arg if op in _BACKWARD else base + 2 * arg


def _jump_arg(own: int, op: int, caches: int, target: int) -> int:
    base = own + 2 + 2 * caches * _JUMP_BASE_CACHES
    delta = base - target if op in _BACKWARD else target - base
    if delta < 0:
        raise RewriteError(f"{dis.opname[op]} at {own} cannot reach {target}")
    return delta // 2


def _prefixes_for(arg: int) -> int:
    return 0 if arg < 1 << 8 else 1 if arg < 1 << 16 else 2 if arg < 1 << 24 else 3


def _unit(op: int, arg: int, prefixes: int) -> bytes:
    out = bytearray()
    for shift in range(prefixes, 0, -1):
        out += bytes((_EXTENDED_ARG, (arg >> (8 * shift)) & 0xFF))
    out += bytes((op, arg & 0xFF))
    return bytes(out)


# -- the exception table and the location table (3.11+ formats) --------------------------------


class Handler(NamedTuple):
    start: int
    end: int
    target: int
    depth_lasti: int


def _read_varint_be(data: bytes, i: int) -> tuple[int, int]:
    b = data[i]
    value = b & 63
    while b & 64:
        i += 1
        b = data[i]
        value = (value << 6) | (b & 63)
    return value, i + 1


def exception_table(code: CodeType) -> list[Handler]:
    data, i, out = code.co_exceptiontable, 0, []
    while i < len(data):
        start, i = _read_varint_be(data, i)
        length, i = _read_varint_be(data, i)
        target, i = _read_varint_be(data, i)
        depth_lasti, i = _read_varint_be(data, i)
        out.append(Handler(start * 2, (start + length) * 2, target * 2, depth_lasti))
    return out


def _write_varint_be(out: bytearray, value: int, first: bool) -> None:
    groups = [value & 63]
    value >>= 6
    while value:
        groups.append(value & 63)
        value >>= 6
    last = len(groups) - 1
    for n, group in enumerate(reversed(groups)):
        out.append(group | (64 if n < last else 0) | (128 if first and n == 0 else 0))


def _encode_exception_table(entries: list[Handler]) -> bytes:
    out = bytearray()
    for entry in entries:
        _write_varint_be(out, entry.start // 2, True)
        _write_varint_be(out, (entry.end - entry.start) // 2, False)
        _write_varint_be(out, entry.target // 2, False)
        _write_varint_be(out, entry.depth_lasti, False)
    return bytes(out)


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 64:
        out.append(64 | (value & 63))
        value >>= 6
    out.append(value)
    return bytes(out)


_SMALL_VARINTS = [_varint(v) for v in range(4096)]


def _v(value: int) -> bytes:
    return _SMALL_VARINTS[value] if value < 4096 else _varint(value)


def encode_locations(first_line: int, positions: list[Position]) -> bytes:
    """The location table for one position per code unit: long entries, or none/no-column ones."""
    out = bytearray()
    previous = first_line
    for here, run in groupby(positions):
        count = len(list(run))
        line, end_line, column, end_column = here
        if line is None:
            head, first, rest = 0xF8, b"", b""  # code 15: no location
        else:
            delta = line - previous
            previous = line
            if column is None or end_column is None or end_line is None:
                head, rest = 0xE8, b""  # code 13: the line only
            else:
                head, rest = 0xF0, _v(end_line - line) + _v(column + 1) + _v(end_column + 1)  # code 14
            first = _v((-delta << 1) | 1 if delta < 0 else delta << 1) + rest
            rest = _SMALL_VARINTS[0] + rest  # the run's next entries: the same line again
        while count > 8:
            out.append(head | 7)
            out += first
            first, count = rest, count - 8
        out.append(head | (count - 1))
        out += first
    return bytes(out)


# -- placing probes -----------------------------------------------------------------------------


def probe_sites(
    code: _Code, positions: list[Position], handlers: list[Handler], suspends: bool = True
) -> dict[int, LineNo]:
    """Instruction index -> the line its probe records (see the module docstring).

    ``suspends``: the code object is a generator or coroutine, whose frame may stop mid-line in one test and
    go on in the next; only then does a jump within one line need a probe at its target.
    """
    starts, ops, args, caches, prefixes = code
    at = dict(zip(starts, ops))
    targets = {h.target for h in handlers if at.get(h.target) != _END_ASYNC_FOR}
    index_at = {start: index for index, start in enumerate(starts)}
    for index, op in enumerate(ops):
        if op in _JUMPS:
            target = jump_target(starts[index] + 2 * prefixes[index], op, args[index], caches[index])
            if not suspends:
                line = positions[starts[index] // 2 + prefixes[index]][0]
                landing = index_at.get(target)
                if line is not None and landing is not None and positions[target // 2 + prefixes[landing]][0] == line:
                    continue  # within one line: this frame already recorded it (see the module docstring)
            targets.add(target)
    sites: dict[int, LineNo] = {}
    pending: LineNo | None = None  # a line whose probe could not go where it belonged
    previous: LineNo | None = -1  # the last line seen in address order (instructions without one are skipped)
    after_resume = resumed = False
    for index, op in enumerate(ops):
        line = positions[starts[index] // 2 + prefixes[index]][0]
        target = starts[index] in targets
        if op == _RESUME:
            resumed = True
            after_resume = args[index] == 0  # the frame's start: its first line is reported even if it is the def's
            previous = line
            continue
        if not resumed:
            continue  # the prologue (MAKE_CELL, COPY_FREE_VARS, RETURN_GENERATOR...) runs before RESUME
        if line is None:
            if target:
                previous = -1  # control enters here from elsewhere: the next line is new again
            continue
        wanted = after_resume or line != previous or target
        after_resume = False
        if pending is not None and line != pending:
            pending = None
        if wanted or pending is not None:
            if op not in _NO_PROBE_BEFORE and (index == 0 or ops[index - 1] not in _NO_PROBE_AFTER):
                sites[index] = line
                pending = None
            elif wanted:
                pending = line
        previous = line
    return sites


# -- the rewrite --------------------------------------------------------------------------------


def max_line(code: CodeType) -> int:
    """The highest line any instruction of ``code`` or of the code objects nested in it is on (0 if none)."""
    return max((line for each in walk(code) for _, _, line in each.co_lines() if line is not None), default=0)


def _rewrite_one(code: CodeType, lines: LineMap, base: int) -> CodeType:
    raw = code.co_code
    decoded = decode(raw)
    starts, ops, args, caches, prefixes = decoded
    positions: list[Position] = list(code.co_positions())
    if len(positions) != len(raw) // 2:
        raise RewriteError("positions do not match the code units")
    known = set(starts)
    known.add(len(raw))
    jumps = [i for i, op in enumerate(ops) if op in _JUMPS]
    old_targets = {i: jump_target(starts[i] + 2 * prefixes[i], ops[i], args[i], caches[i]) for i in jumps}
    if not known.issuperset(old_targets.values()):
        raise RewriteError("a jump lands inside an instruction")
    handlers = exception_table(code)
    if not all(h.start in known and h.end in known and h.target in known for h in handlers):
        raise RewriteError("the exception table points inside an instruction")
    sites = probe_sites(decoded, positions, handlers, bool(code.co_flags & _SUSPENDS))
    if not sites:
        return code

    if base + max(sites.values()) >= len(lines) or base + min(sites.values()) < 0:
        raise RewriteError("a line outside the file's part of the line map")
    consts = list(code.co_consts)
    one_index = len(consts)
    consts += [1, lines]
    head = _unit(_LOAD_CONST, one_index, _prefixes_for(one_index)) + _unit(
        _LOAD_CONST, one_index + 1, _prefixes_for(one_index + 1)
    )
    tail = _unit(_STORE_SUBSCR, 0, 0) + bytes(2 * _CACHES[_STORE_SUBSCR])
    probe_of: dict[LineNo, bytes] = {}
    for line in sorted(set(sites.values())):
        index = len(consts)
        consts.append(base + line)
        probe_of[line] = head + _unit(_LOAD_CONST, index, _prefixes_for(index)) + tail
    probes = {i: probe_of[line] for i, line in sites.items()}

    # Layout: bytes inserted before an old offset (a probe, a jump's extra prefixes) move everything at or after it.
    new_prefixes = {i: prefixes[i] for i in jumps}
    while True:
        inserted = sorted(
            [(starts[i], len(unit)) for i, unit in probes.items()]
            + [(starts[i], 2 * (new_prefixes[i] - prefixes[i])) for i in jumps if new_prefixes[i] > prefixes[i]]
        )
        offsets = [offset for offset, _ in inserted]
        shifts = [0, *accumulate(size for _, size in inserted)]

        def moved(old: int) -> int:
            """The new offset of what was at ``old`` (the probe in front of it, if any)."""
            return old + shifts[bisect_left(offsets, old)]

        new_args: dict[int, int] = {}
        grew = False
        for i in jumps:
            own = moved(starts[i]) + len(probes.get(i, b"")) + 2 * new_prefixes[i]
            new_args[i] = arg = _jump_arg(own, ops[i], caches[i], moved(old_targets[i]))
            if _prefixes_for(arg) > new_prefixes[i]:
                new_prefixes[i], grew = _prefixes_for(arg), True
        if not grew:
            break

    out = bytearray()
    new_positions: list[Position] = []
    copied = 0  # raw offset up to which bytes and positions are in the output
    for i in sorted({*probes, *jumps}):
        start = starts[i]
        out += raw[copied:start]
        new_positions += positions[copied // 2 : start // 2]
        own_position = positions[start // 2 + prefixes[i]]
        copied = start
        probe = probes.get(i)
        if probe is not None:
            out += probe
            line = sites[i]
            new_positions += [own_position if own_position[0] == line else (line, line, None, None)] * (len(probe) // 2)
        if i in new_args:
            unit = _unit(ops[i], new_args[i], new_prefixes[i])
            out += unit
            new_positions += [own_position] * (len(unit) // 2)
            copied = start + 2 * prefixes[i] + 2  # the caches after it are zeros in co_code: copied as they are
    out += raw[copied:]
    new_positions += positions[copied // 2 :]
    new_handlers = [Handler(moved(h.start), moved(h.end), moved(h.target), h.depth_lasti) for h in handlers]
    return code.replace(
        co_code=bytes(out),
        co_consts=tuple(consts),
        co_stacksize=code.co_stacksize + _PROBE_STACK,
        co_linetable=encode_locations(code.co_firstlineno, new_positions),
        co_exceptiontable=_encode_exception_table(new_handlers),
    )


def instrument(code: CodeType, lines: LineMap, base: int = 0, skipped: list[str] | None = None) -> CodeType:
    """``code`` and the code objects nested in it with probes marking ``lines[base + line]`` (see the module
    docstring); ``lines`` must already reach past ``base + max_line(code)``."""
    consts = code.co_consts
    nested = [instrument(c, lines, base, skipped) if type(c) is CodeType else c for c in consts]
    if any(a is not b for a, b in zip(nested, consts)):
        code = code.replace(co_consts=tuple(nested))
    try:
        return _rewrite_one(code, lines, base)
    except (RewriteError, ValueError, KeyError, IndexError) as exc:
        if skipped is not None:
            skipped.append(f"{code.co_filename}:{code.co_firstlineno} {code.co_name}: {exc}")
        return code


def is_instrumented(code: CodeType) -> bool:
    return any(type(c) is LineMap for c in code.co_consts)


def walk(code: CodeType) -> Iterator[CodeType]:
    """``code`` and every code object nested in it."""
    yield code
    for const in code.co_consts:
        if type(const) is CodeType:
            yield from walk(const)
