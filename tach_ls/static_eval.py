"""A small, bounded evaluator for the expressions found in `parametrize` calls.

It computes what can be known without importing anything: literals, module
constants, comprehensions, `range`, f-strings, `pytest.param(...)`, enum
members, and the names of functions and classes. Whatever it cannot compute
becomes `Opaque` (an object whose id pytest derives from the argument name
and index, the usual case for arrays and instances) or `Unknown` (not even
the shape is known: the caller marks the test `dynamic`).

Every evaluation is bounded in steps and sizes, so a hostile or huge file
cannot hang the indexer.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

MAX_STEPS = 200_000

from tach_ls.static_tables import (
    MAX_SEQUENCE,
    _BINOPS,
    _BUILTIN_NAMED,
    _CMP,
    _MATH_CONSTANTS,
    _MISSING,
    _MODULE_FUNCTIONS,
    _UNARY,
    _describe_real,
    _looks_like_class_or_function,
)
from tach_ls.static_calls import CallRules, mark_name, mark_names
from tach_ls.static_values import (
    EnumClass,
    EnumMember,
    EvalError,
    Lambda,
    Named,
    Opaque,
    Param,
    PathValue,
    PatternValue,
    bound,
    concrete,
    iterate,
)

__all__ = [
    "EnumClass", "EnumMember", "Env", "EvalError", "Evaluator", "Lambda", "Named", "Opaque", "Param",
    "PathValue", "PatternValue", "mark_name", "mark_names",
]  # fmt: skip


@dataclass
class Env:
    """Names visible to the evaluator: module constants, functions, classes, enums."""

    values: dict[str, ast.expr] = field(default_factory=dict)  # NAME = <expr>, evaluated lazily
    functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = field(default_factory=dict)
    classes: set[str] = field(default_factory=set)
    enums: dict[str, EnumClass] = field(default_factory=dict)
    pytest_names: set[str] = field(default_factory=lambda: {"pytest"})  # aliases of the pytest module
    param_names: set[str] = field(default_factory=set)  # `from pytest import param`
    math_names: set[str] = field(default_factory=set)  # aliases of the math module
    sys_names: set[str] = field(default_factory=set)  # aliases of the sys module
    imported: set[str] = field(default_factory=set)  # names bound by imports (unknown values)
    imports: dict[str, tuple[str | None, str | None, int]] = field(default_factory=dict)  # local -> (module, name, level)
    # Finds the Env of the module an import refers to (set by the index; None: imports stay unknown).
    resolver: Callable[[str | None, str | None, int], Env | None] | None = None
    cache: dict[str, Any] = field(default_factory=dict)
    _resolving: set[str] = field(default_factory=set)


class Evaluator(CallRules):
    """Evaluate one expression tree against an `Env`, within a step budget."""

    def __init__(self, env: Env, locals_: dict[str, Any] | None = None, budget: list[int] | None = None, depth: int = 0) -> None:
        self.env = env
        self.locals = locals_ or {}
        self.budget = budget if budget is not None else [0]  # shared with child scopes
        self.depth = depth  # how many imports deep: bounded, and cycles end there

    def child(self, scope: dict[str, Any]) -> Evaluator:
        return Evaluator(self.env, scope, self.budget, self.depth)

    def _imported_env(self, name: str) -> tuple[Env | None, str | None]:
        """The module an imported name comes from, and its name there."""
        spec = self.env.imports.get(name)
        if spec is None or self.env.resolver is None or self.depth > 8:
            return None, None
        module, original, level = spec
        if original is None:
            return None, None
        return self.env.resolver(module, original, level), original

    def _member(self, enum_name: str, enum: EnumClass, attr: str) -> EnumMember:
        if enum.value_str:
            value = enum.members[attr]
            if isinstance(value, (Opaque, Named, EnumMember, Param, Lambda)) or value is None:
                raise EvalError("enum value not known statically")
            return EnumMember(str(value))
        return EnumMember(f"{enum_name}.{attr}")

    def _module_attr(self, module: str, attr: str) -> Any:
        """`module.attr`: a submodule, a stdlib helper we can run, or a workspace module's name."""
        dotted = f"{module}.{attr}"
        if dotted in _MODULE_FUNCTIONS:
            return Named(attr, qual=dotted)
        if module in ("math",) and attr in _MATH_CONSTANTS:
            return _MATH_CONSTANTS[attr]
        if module in sys.stdlib_module_names and module in sys.modules and not attr.startswith("_"):
            return _describe_real(getattr(sys.modules[module], attr, _MISSING), dotted)
        if self.env.resolver is not None and self.depth <= 8:
            other = self.env.resolver(module, None, 0)
            if other is not None:
                try:
                    return Evaluator(other, budget=self.budget, depth=self.depth + 1).lookup(attr)
                except EvalError:
                    pass
                sub = self.env.resolver(dotted, None, 0)
                if sub is not None:
                    return Named(dotted, module=dotted)
                raise EvalError(f"{dotted} is not known statically")
        if _looks_like_class_or_function(attr):
            return Named(attr, certain=False)
        raise EvalError(f"{dotted} is not known statically")

    def _enum(self, name: str) -> tuple[str, EnumClass] | None:
        if name in self.env.enums:
            return name, self.env.enums[name]
        if name in self.env.imported:
            other, original = self._imported_env(name)
            if other is not None and original is not None:
                if original in other.enums:
                    return original, other.enums[original]
        return None

    def eval(self, node: ast.expr) -> Any:
        self.budget[0] += 1
        if self.budget[0] > MAX_STEPS:
            raise EvalError("expression too large to evaluate statically")
        method = getattr(self, "on_" + type(node).__name__, None)
        if method is None:
            raise EvalError(f"cannot evaluate {type(node).__name__} statically")
        return method(node)

    # -- literals and containers ------------------------------------------
    def on_Constant(self, node: ast.Constant) -> Any:
        if node.value is Ellipsis:
            return Opaque()
        return node.value

    def _elements(self, elts: list[ast.expr]) -> list[Any]:
        out: list[Any] = []
        for elt in elts:
            if isinstance(elt, ast.Starred):
                out.extend(iterate(self.eval(elt.value)))
            else:
                try:
                    out.append(self.eval(elt))
                except EvalError:
                    # One element we cannot compute (an imported sentinel, a call):
                    # the container's shape is still known; the element is most
                    # likely an object, which pytest names argname+index.
                    out.append(Opaque(certain=False))
            if len(out) > MAX_SEQUENCE:
                raise EvalError("sequence too long")
        return out

    def on_List(self, node: ast.List) -> list[Any]:
        return self._elements(node.elts)

    def on_Tuple(self, node: ast.Tuple) -> tuple[Any, ...]:
        return tuple(self._elements(node.elts))

    def on_Set(self, node: ast.Set) -> Any:
        values = self._elements(node.elts)
        try:
            result = set(values)
        except TypeError:
            return Opaque()
        # Iteration order of a set of strings depends on PYTHONHASHSEED: not static.
        if any(not isinstance(v, int) for v in result):
            raise EvalError("iteration order of a set is not known statically")
        return result

    def on_Dict(self, node: ast.Dict) -> Any:
        return Opaque()

    def on_JoinedStr(self, node: ast.JoinedStr) -> str:
        parts: list[str] = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
            elif isinstance(value, ast.FormattedValue):
                v = concrete(self.eval(value.value))
                if value.conversion == ord("r"):
                    v = repr(v)
                elif value.conversion == ord("s"):
                    v = str(v)
                elif value.conversion == ord("a"):
                    v = ascii(v)
                spec = self.eval(value.format_spec) if value.format_spec else ""
                parts.append(format(v, spec))
            else:
                raise EvalError("unexpected f-string part")
        return str(bound("".join(parts)))

    # -- names ---------------------------------------------------------------
    def on_Name(self, node: ast.Name) -> Any:
        return self.lookup(node.id)

    def lookup(self, name: str) -> Any:
        if name in self.locals:
            return self.locals[name]
        env = self.env
        if name in env.cache:
            return env.cache[name]
        if name in env.values:
            if name in env._resolving:
                raise EvalError(f"recursive definition of {name}")
            env._resolving.add(name)
            try:
                value = Evaluator(env, budget=self.budget).eval(env.values[name])
            except EvalError:
                value = _UNKNOWN_MARK
            finally:
                env._resolving.discard(name)
            env.cache[name] = value
            if value is _UNKNOWN_MARK:
                raise EvalError(f"{name} is not known statically")
            return value
        if name in env.enums:
            return Named(name, enum=env.enums[name])
        if name in env.functions or name in env.classes:
            return Named(name)
        if name in env.imported:
            spec = env.imports.get(name)
            if spec is not None and spec[1] is None and spec[2] == 0 and spec[0]:
                return Named(spec[0], module=spec[0])  # `import x.y as name` / `import name`
            other, original = self._imported_env(name)
            if other is not None and original is not None:
                return Evaluator(other, budget=self.budget, depth=self.depth + 1).lookup(original)
            if spec is not None and spec[1] is not None and _looks_like_class_or_function(spec[1]):
                return Named(spec[1], certain=False)  # from third_party import Thing: most likely a class
            raise EvalError(f"{name} is imported: its value is not known statically")
        if name in _BUILTIN_NAMED:
            return Named(name)
        raise EvalError(f"unknown name {name}")

    def on_Attribute(self, node: ast.Attribute) -> Any:
        base = node.value
        if isinstance(base, ast.Name):
            found = self._enum(base.id)
            if found is not None and node.attr in found[1].members:
                return self._member(found[0], found[1], node.attr)
            if base.id in self.env.math_names and node.attr in _MATH_CONSTANTS:
                return _MATH_CONSTANTS[node.attr]
            if base.id in self.env.sys_names and node.attr in ("version_info", "platform", "maxsize", "byteorder"):
                value = getattr(sys, node.attr)
                return tuple(value) if node.attr == "version_info" else value
        value = self.eval(base)
        if node.attr == "__name__" and isinstance(value, (Named, Lambda)):
            return value.name
        if isinstance(value, Named) and value.enum is not None and node.attr in value.enum.members:
            return self._member(value.name, value.enum, node.attr)
        if isinstance(value, Named) and value.module is not None:
            return self._module_attr(value.module, node.attr)
        if isinstance(value, (str, bytes, int, float, list, tuple)) and not node.attr.startswith("_"):
            attr = getattr(value, node.attr, None)
            if attr is not None and not callable(attr):
                return attr
        raise EvalError("attribute access is not evaluated statically")

    def on_Lambda(self, node: ast.Lambda) -> Lambda:
        return Lambda([a.arg for a in node.args.args], node.body)

    # -- operators -----------------------------------------------------------
    def on_BinOp(self, node: ast.BinOp) -> Any:
        left = concrete(self.eval(node.left))
        right = concrete(self.eval(node.right))
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise EvalError("operator not supported")
        if isinstance(node.op, ast.Pow) and isinstance(right, int) and abs(right) > 10_000:
            raise EvalError("power too large")
        if isinstance(node.op, ast.Mult) and isinstance(left, (str, bytes, list, tuple)) and isinstance(right, int):
            if len(left) * right > MAX_SEQUENCE:
                raise EvalError("sequence too long")
        if isinstance(node.op, ast.Mult) and isinstance(right, (str, bytes, list, tuple)) and isinstance(left, int):
            if len(right) * left > MAX_SEQUENCE:
                raise EvalError("sequence too long")
        if isinstance(node.op, ast.LShift) and isinstance(right, int) and right > 10_000:
            raise EvalError("shift too large")
        try:
            return bound(op(left, right))
        except Exception as exc:  # TypeError, ZeroDivisionError, ...: pytest would fail here too
            raise EvalError(str(exc)) from None

    def on_UnaryOp(self, node: ast.UnaryOp) -> Any:
        value = concrete(self.eval(node.operand))
        try:
            return _UNARY[type(node.op)](value)
        except Exception as exc:
            raise EvalError(str(exc)) from None

    def on_BoolOp(self, node: ast.BoolOp) -> Any:
        result: Any = None
        for value_node in node.values:
            result = concrete(self.eval(value_node))
            if isinstance(node.op, ast.And) and not result:
                return result
            if isinstance(node.op, ast.Or) and result:
                return result
        return result

    def on_Compare(self, node: ast.Compare) -> bool:
        left = concrete(self.eval(node.left))
        for op, comp in zip(node.ops, node.comparators):
            right = concrete(self.eval(comp))
            try:
                if not _CMP[type(op)](left, right):
                    return False
            except Exception as exc:
                raise EvalError(str(exc)) from None
            left = right
        return True

    def on_IfExp(self, node: ast.IfExp) -> Any:
        test = concrete(self.eval(node.test))
        return self.eval(node.body if test else node.orelse)

    def on_Subscript(self, node: ast.Subscript) -> Any:
        value = concrete(self.eval(node.value))
        index = self.eval(node.slice)
        try:
            return value[index]
        except Exception as exc:
            raise EvalError(str(exc)) from None

    def on_Slice(self, node: ast.Slice) -> slice:
        parts = [concrete(self.eval(p)) if p is not None else None for p in (node.lower, node.upper, node.step)]
        return slice(*parts)

    # -- comprehensions --------------------------------------------------------
    def on_ListComp(self, node: ast.ListComp) -> list[Any]:
        return list(self._comprehend(node.generators, 0, node.elt, dict(self.locals)))

    on_GeneratorExp = on_ListComp

    def _comprehend(self, gens: list[ast.comprehension], i: int, elt: ast.expr, scope: dict[str, Any]) -> Iterator[Any]:
        if i == len(gens):
            yield self.child(scope).eval(elt)
            return
        gen = gens[i]
        inner = self.child(scope)
        count = 0
        for value in iterate(inner.eval(gen.iter)):
            new_scope = dict(scope)
            _bind(gen.target, value, new_scope)
            sub = self.child(new_scope)
            if all(concrete(sub.eval(cond)) for cond in gen.ifs):
                for out in self._comprehend(gens, i + 1, elt, new_scope):
                    count += 1
                    if count > MAX_SEQUENCE:
                        raise EvalError("comprehension too long")
                    yield out

_UNKNOWN_MARK = object()


def _bind(target: ast.expr, value: Any, scope: dict[str, Any]) -> None:
    if isinstance(target, ast.Name):
        scope[target.id] = value
    elif isinstance(target, (ast.Tuple, ast.List)):
        if not isinstance(value, (tuple, list)) or len(value) != len(target.elts):
            raise EvalError("cannot unpack statically")
        for sub, v in zip(target.elts, value):
            _bind(sub, v, scope)
    else:
        raise EvalError("unsupported comprehension target")
