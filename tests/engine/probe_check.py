"""Checks of the bytecode line probes, run as a script in a project interpreter (3.11, 3.12).

    python probe_check.py verify FILE...      every code object of each file, rewritten, is the same
                                              program: with its probes taken out, the same instructions,
                                              every jump and exception handler landing on what it did
    python probe_check.py corpus              tricky functions run plain and probed: the same results, and
                                              the probes record exactly the lines a trace function sees
    python probe_check.py suite TEST...       CPython's own test modules with every code object probed
    python probe_check.py compile DIR         code compiled under a workspace file's name (a template) is
                                              probed, and compile() keeps its caller's __future__ flags

Each prints one JSON object. Imports ``tach_ls.engine.bytecode`` with the
repository on ``sys.path`` (the module is standard library only).
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from types import CodeType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tach_ls.engine import bytecode, coverage_ring  # noqa: E402

LineMap = bytecode.LineMap


def line_map(code: CodeType) -> LineMap:
    """A map long enough for every line of ``code``, its part starting at 0."""
    return LineMap(bytecode.max_line(code) + 1)


def strip_probes(code: CodeType) -> tuple[list[int], dict[int, int]]:
    """Instruction indexes of ``code`` that are not probes, and old start -> start (probe first) map helpers."""
    decoded = bytecode.decode(code.co_code)
    maps = {i for i, c in enumerate(code.co_consts) if type(c) is LineMap}
    real, probe_before = [], {}
    index = 0
    while index < len(decoded.ops):
        ops, args = decoded.ops, decoded.args
        if ops[index] == bytecode._LOAD_CONST and ops[index + 1 : index + 2] == [bytecode._LOAD_CONST] and args[index + 1] in maps:
            assert code.co_consts[args[index]] == 1, f"{code.co_name}: a probe stores {code.co_consts[args[index]]!r}"
            assert ops[index + 2] == bytecode._LOAD_CONST and ops[index + 3] == bytecode._STORE_SUBSCR, code.co_name
            probe_before[index + 4] = decoded.starts[index]
            index += 4
            continue
        real.append(index)
        index += 1
    return real, probe_before


def verify(old: CodeType, new: CodeType) -> None:
    """``new`` is ``old`` with probes only (raises AssertionError with the reason otherwise)."""
    if old is new:
        return
    before, after = bytecode.decode(old.co_code), bytecode.decode(new.co_code)
    real, probe_before = strip_probes(new)
    assert len(real) == len(before.ops), f"{old.co_name}: {len(real)} instructions for {len(before.ops)}"
    moved = {before.starts[k]: probe_before.get(i, after.starts[i]) for k, i in enumerate(real)}
    moved[len(old.co_code)] = len(new.co_code)
    old_positions, new_positions = list(old.co_positions()), list(new.co_positions())
    for k, i in enumerate(real):
        op = before.ops[k]
        assert after.ops[i] == op, f"{old.co_name}: opcode {k} differs"
        if op in bytecode._JUMPS:
            old_target = bytecode.jump_target(before.starts[k] + 2 * before.prefixes[k], op, before.args[k], before.caches[k])
            new_target = bytecode.jump_target(after.starts[i] + 2 * after.prefixes[i], op, after.args[i], after.caches[i])
            assert moved[old_target] == new_target, f"{old.co_name}: jump {k} lands elsewhere"
        else:
            assert after.args[i] == before.args[k], f"{old.co_name}: argument {k} differs"
        own_old, own_new = before.starts[k] // 2 + before.prefixes[k], after.starts[i] // 2 + after.prefixes[i]
        assert new_positions[own_new] == old_positions[own_old], f"{old.co_name}: position of {k} differs"
    old_handlers, new_handlers = bytecode.exception_table(old), bytecode.exception_table(new)
    assert [(moved[h.start], moved[h.end], moved[h.target], h.depth_lasti) for h in old_handlers] == [
        tuple(h) for h in new_handlers
    ], f"{old.co_name}: exception table"
    assert new.co_consts[: len(old.co_consts)] is not None
    for a, b in zip(old.co_consts, new.co_consts):
        if type(a) is CodeType:
            verify(a, b)


def do_verify(paths: list[str]) -> dict[str, Any]:
    files = codes = skipped = 0
    failures: list[str] = []
    for path in paths:
        try:
            code = compile(Path(path).read_bytes(), path, "exec")
        except (SyntaxError, ValueError):
            continue
        notes: list[str] = []
        new = bytecode.instrument(code, line_map(code), 0, notes)
        skipped += len(notes)
        try:
            verify(code, new)
        except AssertionError as exc:
            failures.append(f"{path}: {exc}")
        files += 1
        codes += sum(1 for _ in bytecode.walk(code))
    return {"files": files, "codes": codes, "skipped": skipped, "failures": failures[:10]}


CORPUS = textwrap.dedent(
    '''\
    import asyncio, contextlib


    def loops(n):
        total = 0
        for i in range(n):
            if i == 3:
                continue
            if i == 7:
                break
            total += i
        else:
            total = -1
        while n > 0:
            n -= 2
        else:
            total += 100
        return total


    def handlers(x):
        out = []
        try:
            try:
                out.append(1 / x)
            except ZeroDivisionError as exc:
                out.append(type(exc).__name__)
                raise ValueError("again") from exc
            else:
                out.append("else")
            finally:
                out.append("finally")
        except ValueError:
            out.append("outer")
        return out


    def finally_returns(x):
        try:
            return x
        finally:
            if x:
                return -x


    def groups(n):
        try:
            raise ExceptionGroup("g", [ValueError(n), TypeError(n)])
        except* ValueError as eg:
            got = [str(e) for e in eg.exceptions]
        except* TypeError:
            got = "type"
        return got


    @contextlib.contextmanager
    def managed(log):
        log.append("enter")
        try:
            yield len(log)
        finally:
            log.append("exit")


    def withs(fail):
        log = []
        try:
            with managed(log) as a, managed(log) as b:
                log.append(a + b)
                if fail:
                    raise KeyError(fail)
        except KeyError:
            log.append("caught")
        return log


    def gen(n):
        got = yield "start"
        for i in range(n):
            got = yield got + i
        return "done"


    def delegate(n):
        result = yield from gen(n)
        yield result


    def drive_gen(n):
        it = delegate(n)
        out = [next(it)]
        for k in range(n):
            out.append(it.send(k * 10))
        out.append(next(it))
        try:
            it.throw(RuntimeError("stop"))
        except RuntimeError as exc:
            out.append(str(exc))
        return out


    class Tick:
        def __await__(self):
            yield  # hands control to the event loop once, as a real await would


    async def ticks(n):
        for i in range(n):
            await Tick()
            yield i


    class Res:
        async def __aenter__(self):
            return 5

        async def __aexit__(self, *exc):
            return False


    async def coro(n):
        got = []
        async for i in ticks(n):
            if i % 2:
                continue
            got.append(i)
        async with Res() as r:
            got.append(r)
        got.extend([i async for i in ticks(2)])
        return got


    def run_coro(n):
        return asyncio.run(coro(n))


    def matching(value):
        match value:
            case {"kind": "point", "x": x, "y": y} if x == y:
                return "diagonal"
            case {"kind": "point", "x": x}:
                return f"point {x}"
            case [first, *rest]:
                return (first, len(rest))
            case str() | bytes():
                return "text"
            case _:
                return None


    def comprehensions(n):
        evens = [i for i in range(n) if i % 2 == 0]
        squares = {i: i * i for i in evens}
        nested = [(a, b) for a in range(3) for b in range(a) if b]
        lazy = sum(x for x in squares.values() if x > 1)
        return evens, squares, nested, lazy, {c for c in "abca"}


    def closures(n):
        count = 0

        def bump(step=1):
            nonlocal count
            count += step
            return count

        adders = [lambda x, i=i: x + i for i in range(n)]
        bump()
        bump(
            step=5,
        )
        return count, [f(10) for f in adders]


    def expressions(a, b, c=None):
        result = (
            a
            and b
            or c
        )
        value = (a if
                 b else
                 c)
        if (n := len(str(a))) > 1:
            value = n
        call = dict(
            first=a,
            second=b,
            **({"third": c} if c else {}),
        )
        assert call["first"] == a, "never"
        return result, value, call, f"{a!r:>5}{b}"


    def one_liner(x): return x * 2


    class Shape:
        sides = 0

        def __init__(self, name):
            self.name = name

        @property
        def label(self):
            return f"{self.name}/{self.sides}"

        @classmethod
        def make(cls, *args, **kwargs):
            return cls(*args, **kwargs)


    class Square(Shape):
        sides = 4

        def label_twice(self):
            return super().label * 2


    def classes():
        return Square.make("sq").label_twice(), Shape("s").label


    def deep(n):
        if n <= 0:
            raise LookupError("bottom")
        return deep(n - 1)


    def recursion():
        try:
            deep(30)
        except LookupError as exc:
            return str(exc)
    '''
)


def long_jumps(count: int) -> str:
    """A function whose jumps need EXTENDED_ARG once probes are in (and some that need it already)."""
    body = "\n".join(f"        a{i} = {i}" for i in range(count))
    return f"def long_{count}(x):\n    if x:\n{body}\n        x = -x\n    while x > 0:\n        x -= 1\n    return x\n"


def big_consts() -> str:
    """A function with more than 256 constants: LOAD_CONST of the probes needs EXTENDED_ARG."""
    values = ", ".join(f'"c{i}"' for i in range(300))
    return f"def big_consts(k):\n    table = [{values}]\n    return table[k]\n"


CALLS: list[tuple[str, tuple[Any, ...]]] = [
    ("loops", (5,)), ("loops", (10,)), ("handlers", (0,)), ("handlers", (2,)), ("finally_returns", (0,)),
    ("finally_returns", (3,)), ("groups", (1,)), ("withs", (None,)), ("withs", ("boom",)), ("drive_gen", (3,)),
    ("run_coro", (5,)), ("matching", ({"kind": "point", "x": 1, "y": 1},)), ("matching", ({"kind": "point", "x": 2},)),
    ("matching", ([1, 2, 3],)), ("matching", ("s",)), ("matching", (7,)), ("comprehensions", (6,)), ("closures", (3,)),
    ("expressions", (10, 0, 3)), ("expressions", (1, 2)), ("one_liner", (4,)), ("classes", ()), ("recursion", ()),
    ("long_60", (1,)), ("long_60", (0,)), ("long_130", (1,)), ("long_300", (1,)), ("big_consts", (299,)),
]  # fmt: skip


def do_corpus(directory: str) -> dict[str, Any]:
    source = CORPUS + "\n\n" + "\n\n".join([*(long_jumps(n) for n in (60, 130, 300)), big_consts()])
    path = str(Path(directory) / "corpus.py")
    Path(path).write_text(source)
    code = compile(source, path, "exec")
    lines = line_map(code)
    skipped: list[str] = []
    probed_code = bytecode.instrument(code, lines, 0, skipped)
    verify(code, probed_code)
    plain: dict[str, Any] = {}
    probed: dict[str, Any] = {}
    exec(code, plain)
    exec(probed_code, probed)
    mismatches = []
    for name, args in CALLS:
        expected = _outcome(plain[name], args)
        traced = _traced_lines(plain[name], args, path)
        lines[:] = bytes(len(lines))
        got = _outcome(probed[name], args)
        if got != expected:
            mismatches.append(f"{name}{args}: result {got!r} != {expected!r}")
        marked = set(coverage_ring.line_numbers(bytes(lines)))
        if marked != traced:
            mismatches.append(f"{name}{args}: probes {sorted(marked - traced)} extra, {sorted(traced - marked)} missing")
    return {"calls": len(CALLS), "skipped": skipped, "mismatches": mismatches}


def _outcome(function: Any, args: tuple[Any, ...]) -> Any:
    try:
        return ["ok", repr(function(*args))]
    except Exception as exc:  # noqa: BLE001
        return ["raised", type(exc).__name__, str(exc)]


def _traced_lines(function: Any, args: tuple[Any, ...], path: str) -> set[int]:
    seen: set[int] = set()

    def trace(frame: Any, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename != path:
            return None
        if event == "line":
            seen.add(frame.f_lineno)
        return trace

    sys.settrace(trace)
    try:
        _outcome(function, args)
    finally:
        sys.settrace(None)
    return seen


def do_suite(names: list[str]) -> dict[str, Any]:
    """CPython's test modules with every code object they and the stdlib load probed (bytecode-introspecting
    tests excepted: they read their own code objects)."""
    import unittest

    from tach_ls.engine import probes

    ids: dict[str, int] = {}
    backend = probes.ProbeBackend(lambda filename: None if filename[:1] == "<" else ids.setdefault(filename, len(ids)))
    backend.start()
    suite = unittest.TestSuite()
    for name in names:
        suite.addTests(unittest.defaultTestLoader.loadTestsFromName(f"test.{name}"))
    result = unittest.TextTestRunner(stream=open("/dev/null", "w"), verbosity=0).run(suite)  # noqa: SIM115
    return {
        "run": result.testsRun,
        "failures": [str(test) for test, _ in result.failures + result.errors][:20],
        "recorded": sum(len(coverage_ring.line_numbers(lines)) for _, lines in backend.take()),
        "skipped": backend.skipped[:5],
    }


COMPILED = "def render(x: Undefined) -> str:\n    return str(x)\n\nout = render(1)\n"


def do_compile(directory: str) -> dict[str, Any]:
    """What ``builtins.compile`` gives while probes are on (run with ``from __future__ import annotations``)."""
    from tach_ls.engine import probes

    template = str(Path(directory) / "page.html")
    backend = probes.ProbeBackend(lambda filename: 0 if filename == template else None)
    backend.start()
    namespace: dict[str, Any] = {}
    exec(compile(COMPILED, template, "exec"), namespace)  # inherits this module's annotations future
    plain: dict[str, Any] = {}
    try:
        exec(compile(COMPILED, template, "exec", dont_inherit=True), plain)
        without_future = "ran"
    except NameError:
        without_future = "NameError"
    import ast

    tree = compile("1 + 1", template, "eval", ast.PyCF_ONLY_AST)
    lines = [line for _, taken in backend.take() for line in coverage_ring.line_numbers(taken)]
    return {"lines": sorted(set(lines)), "annotations": namespace["render"].__annotations__,
            "without_future": without_future, "ast": type(tree).__name__}  # fmt: skip


EARLY = "def first():\n    return 1\n" + "\n" * 200 + "def last():\n    return 2\n"


def do_early(directory: str) -> dict[str, Any]:
    """Functions of a workspace module imported before ``start``: the parts of the map they get, and their lines."""
    from tach_ls.engine import probes

    path = Path(directory) / "early_module.py"
    path.write_text(EARLY)
    sys.path.insert(0, directory)
    import early_module  # type: ignore[import-not-found]

    backend = probes.ProbeBackend(lambda filename: 0 if filename == str(path) else None)
    backend.start()
    ran = (early_module.first(), early_module.last())
    lines = [(file_id, coverage_ring.line_numbers(taken)) for file_id, taken in backend.take()]
    return {"parts": len(backend.starts), "ran": ran, "lines": lines}


def main() -> None:
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "verify":
        print(json.dumps(do_verify(args)))
    elif mode == "corpus":
        print(json.dumps(do_corpus(args[0])))
    elif mode == "suite":
        print(json.dumps(do_suite(args)))
    elif mode == "compile":
        print(json.dumps(do_compile(args[0])))
    elif mode == "early":
        print(json.dumps(do_early(args[0])))
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
