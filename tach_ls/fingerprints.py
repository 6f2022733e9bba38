"""Code blocks of a Python file and their fingerprints, for impact analysis.

A block is a function or method body (nested functions belong to their
enclosing function; a name defined twice, like a property and its setter,
is told apart by order: `C.x`, `C.x#2`), a class's own statements (attributes, not its
methods), or the module's top level (everything outside functions and
class bodies). Its fingerprint hashes the AST without docstrings, line
numbers or comments, so reformatting or editing a comment changes nothing,
while a changed default argument (part of the `def`) does.

`impact_diff` compares two versions block by block, and inside a changed
function statement by statement.
"""

from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass, field

MODULE = "<module>"


@dataclass(frozen=True)
class Block:
    name: str  # "f", "C.m", "C" (class body), "<module>"
    kind: str  # function, class, module
    start: int  # 1-based, decorators included
    end: int
    digest: str
    node: ast.AST | None = field(default=None, compare=False, repr=False)  # the def / class, for diffs


def first_line(node: ast.AST) -> int:
    """A statement's first line: a definition's first decorator, else its own line."""
    line: int = node.lineno  # type: ignore[attr-defined]
    return min([line, *(int(d.lineno) for d in getattr(node, "decorator_list", ()))])


def _strip_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
        return body[1:]
    return body


def _digest(node: ast.AST) -> str:
    text = ast.dump(node, annotate_fields=False, include_attributes=False)
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def _function_digest(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    # The whole `def` (signature, defaults, decorators, body) but not the docstring.
    saved = node.body
    node.body = _strip_docstring(saved)
    try:
        return _digest(node)
    finally:
        node.body = saved


def blocks_of(tree: ast.Module) -> list[Block]:
    out: list[Block] = []
    module_parts: list[ast.stmt] = []

    def visit_class(cls: ast.ClassDef, prefix: str) -> None:
        qual = f"{prefix}{cls.name}"
        own: list[ast.stmt] = []
        for stmt in _strip_docstring(cls.body):
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                add_function(stmt, f"{qual}.")
            elif isinstance(stmt, ast.ClassDef):
                visit_class(stmt, f"{qual}.")
                own.append(ast.ClassDef(name=stmt.name, bases=stmt.bases, keywords=stmt.keywords, body=[], decorator_list=stmt.decorator_list))
            else:
                own.append(stmt)
        header = ast.ClassDef(name=cls.name, bases=cls.bases, keywords=cls.keywords, body=own, decorator_list=cls.decorator_list)
        out.append(Block(qual, "class", first_line(cls), cls.end_lineno or cls.lineno, _digest(header), cls))

    def add_function(fn: ast.FunctionDef | ast.AsyncFunctionDef, prefix: str) -> None:
        out.append(Block(f"{prefix}{fn.name}", "function", first_line(fn), fn.end_lineno or fn.lineno, _function_digest(fn), fn))

    for stmt in _strip_docstring(tree.body):
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            add_function(stmt, "")
            # The `def` statement itself runs at import: its name binding is module level.
            module_parts.append(ast.Expr(ast.Name(stmt.name)))
        elif isinstance(stmt, ast.ClassDef):
            visit_class(stmt, "")
            module_parts.append(ast.Expr(ast.Name(stmt.name)))
        else:
            module_parts.append(stmt)
    last = max((getattr(s, "end_lineno", 0) or 0 for s in tree.body), default=0)
    out.append(Block(MODULE, "module", 1, max(last, 1), _digest(ast.Module(body=module_parts, type_ignores=[]))))
    return _unique_names(out)


def _unique_names(blocks: list[Block]) -> list[Block]:
    """A name defined again (a property's setter, `@overload`s) gets `#2`, `#3`... in source order."""
    seen: dict[str, int] = {}
    out = []
    for b in sorted(blocks, key=lambda b: (b.start, b.name)):
        count = seen[b.name] = seen.get(b.name, 0) + 1
        out.append(b if count == 1 else Block(f"{b.name}#{count}", b.kind, b.start, b.end, b.digest, b.node))
    return out
