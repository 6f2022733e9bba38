"""What an edit to a Python file can affect, in terms of the old version's lines.

A test executed some lines of the old text (per-test coverage). After an
edit, `diff_sources(old, new)` says which of those lines matter:

- `module_level`: a module's top level or a class body changed (they run at
  import, outside any test's coverage), or a function was added, removed or
  renamed: nothing line-level can be trusted; the caller selects every test
  that executed anything in the file or in a module importing it.
- `functions`: for each function whose body or signature changed, either the
  old lines whose execution means a test may behave differently now
  (`lines`), or `None` when any call may (its signature, decorators or
  scoping changed): then every test that executed a line of the function.

Within a changed function the bodies are compared statement by statement
(sequence matching on position-free AST dumps, recursing into compound
statements of the same kind): a replaced or deleted statement triggers on
any of its old lines; an inserted one on its neighbours (the statement
before it, the one after it, and the enclosing statement when it opens a
block), since control reaches an insertion point only through them; a
changed header (`if`, `for`, `with`, `except` ...) on the header's lines.
A test that executed none of the trigger lines followed the same path
through unchanged code, so it behaves as before. Scoping is checked first:
a name that becomes local (or stops being local), a changed `global` or
`nonlocal`, or a function turning into a generator or coroutine changes the
meaning of lines that did not change, so the whole function counts.

Docstrings are ignored, as in `fingerprints`.
"""

from __future__ import annotations

import ast
import difflib
from dataclasses import dataclass, field
from typing import Any

from tach_ls.fingerprints import Block, blocks_of, first_line

_BODIES = ("body", "orelse", "finalbody")
_UNTRACED = (ast.Global, ast.Nonlocal)  # statements without bytecode: never seen executing


@dataclass
class FileChange:
    module_level: str = ""
    """Why line-level reasoning cannot be trusted ("" when it can): 'class C body changed'..."""
    functions: dict[str, tuple[tuple[int, int], set[int] | None]] = field(default_factory=dict)
    """qualname -> ((old start, old end), trigger lines in the old text, or None for any line of it)."""


def diff_sources(old: str | bytes, new: str | bytes) -> FileChange | None:
    """The change from `old` to `new`; None when either does not parse (the caller is conservative)."""
    try:
        old_blocks = blocks_of(ast.parse(old))
        new_blocks = blocks_of(ast.parse(new))
    except (SyntaxError, ValueError, RecursionError):
        return None
    return diff_blocks(old_blocks, new_blocks)


def diff_blocks(old_blocks: list[Block], new_blocks: list[Block]) -> FileChange:
    change = FileChange()
    old = {b.name: b for b in old_blocks}
    new = {b.name: b for b in new_blocks}
    added, removed = sorted(set(new) - set(old)), sorted(set(old) - set(new))
    if added or removed:  # a def or class bound or unbound at import
        change.module_level = f"{added[0]} was added" if added else f"{removed[0]} was removed"
    for name, before in old.items():
        after = new.get(name)
        if after is not None and after.digest == before.digest:
            continue
        if before.kind != "function" or after is None or after.kind != "function":
            # A class body, the module's top level, or a def that went away: all run at import.
            change.module_level = change.module_level or (
                "module top level changed" if before.kind == "module" else
                f"class {name} body changed" if before.kind == "class" and after is not None else f"{name} was removed"
            )  # fmt: skip
            continue
        assert isinstance(before.node, (ast.FunctionDef, ast.AsyncFunctionDef))
        assert isinstance(after.node, (ast.FunctionDef, ast.AsyncFunctionDef))
        change.functions[name] = ((before.start, before.end), function_triggers(before.node, after.node))
    return change


def function_triggers(old: ast.FunctionDef | ast.AsyncFunctionDef, new: ast.FunctionDef | ast.AsyncFunctionDef) -> set[int] | None:
    """Old lines whose execution means the new function may behave differently; None: any call may."""
    if type(old) is not type(new) or _header(old) != _header(new) or _scopes(old) != _scopes(new) or _rebinds(old, new):
        return None
    out: set[int] = set()
    _diff_body(_strip_docstring(old.body), _strip_docstring(new.body), _span(old), out)
    return out


# -- statement diff -----------------------------------------------------------------------
def _key(node: ast.AST) -> str:
    return ast.dump(node, annotate_fields=False, include_attributes=False)


def _span(node: ast.AST) -> set[int]:
    return set(range(first_line(node), (getattr(node, "end_lineno", None) or node.lineno) + 1))  # type: ignore[attr-defined]


def _header_lines(node: ast.AST) -> set[int]:
    """The lines of a compound statement before its first body statement (decorators included)."""
    body = getattr(node, "body", None)
    first = body[0].lineno if body else node.lineno + 1  # type: ignore[attr-defined]
    return set(range(first_line(node), max(first, node.lineno + 1)))  # type: ignore[attr-defined]


def _header(node: ast.AST) -> str:
    """Everything of a compound statement but its bodies (and, for a def, its docstring)."""
    fields = {name: value for name, value in ast.iter_fields(node) if name not in (*_BODIES, "handlers", "cases")}
    return repr({k: (_key(v) if isinstance(v, ast.AST) else [_key(x) if isinstance(x, ast.AST) else x for x in v] if isinstance(v, list) else v) for k, v in fields.items()})


def _diff_body(old: list[ast.stmt], new: list[ast.stmt], enter: set[int], out: set[int]) -> None:
    """Add to `out` the old lines that trigger the difference between two statement lists.
    `enter`: lines executed whenever control enters this list (the enclosing statement)."""
    matcher = difflib.SequenceMatcher(None, [_key(s) for s in old], [_key(s) for s in new], autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        if tag == "replace" and i2 - i1 == j2 - j1:
            for before, after in zip(old[i1:i2], new[j1:j2]):
                _diff_statement(before, after, out)
            continue
        if i1 < i2:  # replaced or deleted: reaching the region means executing its first old statement
            for stmt in old[i1:i2]:
                out |= _span(stmt)
            continue
        # An insertion before old[i1]: control arrives from old[i1 - 1], or from the block's entry.
        previous = old[i1 - 1] if i1 > 0 else None
        if previous is not None:
            out |= _span(previous)
        if i1 < len(old):
            out |= _span(old[i1])
        if previous is None or isinstance(previous, _UNTRACED):
            out |= enter


def _diff_statement(old: ast.stmt, new: ast.stmt, out: set[int]) -> None:
    compound = bool(getattr(old, "body", None))  # a statement with a body (if, for, with, try, def...)
    if type(old) is not type(new):
        out |= _span(old)
        return
    if not compound:
        _differing_parts(old, new, _span(old), out)
        return
    if _header(old) != _header(new):
        out |= _header_lines(old)
    if isinstance(old, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        if _key(old) != _key(new) and isinstance(old, ast.ClassDef):
            out |= _span(old)  # a class body inside a function: its statements run when the class statement does
            return
        _diff_body(_strip_docstring(old.body), _strip_docstring(new.body), _span(old), out)  # type: ignore[attr-defined]
        return
    for name in _BODIES:
        before, after = getattr(old, name, None), getattr(new, name, None)
        if isinstance(before, list) and isinstance(after, list) and _key(ast.Module(before, [])) != _key(ast.Module(after, [])):
            _diff_body(before, after, _span(old) if name != "body" else _header_lines(old), out)
    for name in ("handlers", "cases"):
        before, after = getattr(old, name, None), getattr(new, name, None)
        if before is None or [_key(x) for x in before] == [_key(x) for x in after or []]:
            continue
        if len(before) != len(after or []):
            out |= _span(old)  # a handler or case added or removed: anything reaching the statement
            continue
        for b, a in zip(before, after or []):
            start = getattr(b, "lineno", None) or b.pattern.lineno  # a match_case has no position of its own
            head = set(range(start, b.body[0].lineno)) | {start}
            if _header(b) != _header(a):
                out |= head
            if _key(ast.Module(b.body, [])) != _key(ast.Module(a.body, [])):
                _diff_body(b.body, a.body, head, out)


def _differing_parts(old: ast.AST, new: ast.AST, fallback: set[int], out: set[int]) -> None:
    """The lines of the smallest sub-trees where `old` and `new` differ. Everything else evaluates
    the same, so behaviour can diverge only once one of them starts evaluating, which executes (and
    traces) one of its lines. A sub-tree without a position (an operator, `arguments`...) falls back
    to its closest positioned ancestor's lines."""
    here = _span(old) if hasattr(old, "lineno") else fallback
    if type(old) is not type(new):
        out |= here
        return
    differing: list[tuple[ast.AST, ast.AST]] = []
    for name, value in ast.iter_fields(old):
        other = getattr(new, name, None)
        if isinstance(value, ast.AST) and isinstance(other, ast.AST):
            if _key(value) != _key(other):
                differing.append((value, other))
        elif isinstance(value, list) and isinstance(other, list) and len(value) == len(other):
            for a, b in zip(value, other):
                if isinstance(a, ast.AST) and isinstance(b, ast.AST):
                    if _key(a) != _key(b):
                        differing.append((a, b))
                elif a != b:
                    out |= here
                    return
        elif (value is None) != (other is None) or not isinstance(value, (ast.AST, list)) and (type(value), repr(value)) != (type(other), repr(other)):
            out |= here  # an operator, a name, a constant, an optional part added: this node itself differs
            return
        elif isinstance(value, list) != isinstance(other, list) or isinstance(value, list) and len(value) != len(other or []):
            out |= here
            return
    for a, b in differing:
        _differing_parts(a, b, here, out)


def _strip_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
        return body[1:]
    return body


# -- scoping ---------------------------------------------------------------------------------
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def _own_nodes(scope: ast.AST) -> list[ast.AST]:
    """The nodes of one scope, not descending into nested scopes (their defaults and decorators excepted)."""
    out: list[ast.AST] = []
    stack = list(ast.iter_child_nodes(scope))
    while stack:
        node = stack.pop()
        out.append(node)
        if isinstance(node, _SCOPES):
            continue
        stack.extend(ast.iter_child_nodes(node))
    return out


def _scope_facts(scope: ast.AST) -> tuple[frozenset[str], frozenset[str], frozenset[str], bool, bool]:
    """(bound names, global names, nonlocal names, is a generator, awaits) of one scope."""
    bound: set[str] = set()
    globals_: set[str] = set()
    nonlocals: set[str] = set()
    generator = awaits = False
    if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        args = scope.args
        bound.update(a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, *(x for x in (args.vararg, args.kwarg) if x)])
    for node in _own_nodes(scope):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            bound.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            bound.add(node.rest)
        elif isinstance(node, ast.Global):
            globals_.update(node.names)
        elif isinstance(node, ast.Nonlocal):
            nonlocals.update(node.names)
        elif isinstance(node, (ast.Yield, ast.YieldFrom)):
            generator = True
        elif isinstance(node, (ast.Await, ast.AsyncFor, ast.AsyncWith)):
            awaits = True
    return frozenset(bound), frozenset(globals_), frozenset(nonlocals), generator, awaits


def _all_scopes(fn: ast.AST) -> list[ast.AST]:
    return [fn, *(n for n in ast.walk(fn) if isinstance(n, _SCOPES) and n is not fn)]


def _scopes(fn: ast.AST) -> tuple[object, list[Any]]:
    """What decides the meaning of unchanged lines: the function's declarations and generator-ness,
    and those of nested scopes that declare anything (a plain new lambda or comprehension does not count)."""
    facts = [(g, n, gen, aw) for _b, g, n, gen, aw in map(_scope_facts, _all_scopes(fn))]
    nested = sorted((f for f in facts[1:] if f[0] or f[1] or f[2] or f[3]), key=repr)
    return facts[0], nested


def _rebinds(old: ast.AST, new: ast.AST) -> bool:
    """Does a name read in the old function change scope (a new local shadowing a global, a local removed)?"""
    read = {n.id for n in ast.walk(old) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    old_bound = set().union(*(facts[0] for facts in map(_scope_facts, _all_scopes(old))))
    new_bound = set().union(*(facts[0] for facts in map(_scope_facts, _all_scopes(new))))
    return bool((old_bound ^ new_bound) & read)
