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
import re
import itertools
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

MAX_STEPS = 200_000
MAX_STR = 10_000

from tach_ls.static_tables import (
    MAX_SEQUENCE,
    _BINOPS,
    _BUILTIN_NAMED,
    _CMP,
    _MATH_CONSTANTS,
    _MISSING,
    _MODULE_FUNCTIONS,
    _OBJECT_BUILTINS,
    _PATH_CLASSES,
    _PURE_BUILTINS,
    _UNARY,
    _describe_real,
    _looks_like_class_or_function,
)
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


class Evaluator:
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
                out.extend(self._iterate(self.eval(elt.value)))
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
                v = self._concrete(self.eval(value.value))
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
        return str(self._bound("".join(parts)))

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
        left = self._concrete(self.eval(node.left))
        right = self._concrete(self.eval(node.right))
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
            return self._bound(op(left, right))
        except Exception as exc:  # TypeError, ZeroDivisionError, ...: pytest would fail here too
            raise EvalError(str(exc)) from None

    def on_UnaryOp(self, node: ast.UnaryOp) -> Any:
        value = self._concrete(self.eval(node.operand))
        try:
            return _UNARY[type(node.op)](value)
        except Exception as exc:
            raise EvalError(str(exc)) from None

    def on_BoolOp(self, node: ast.BoolOp) -> Any:
        result: Any = None
        for value_node in node.values:
            result = self._concrete(self.eval(value_node))
            if isinstance(node.op, ast.And) and not result:
                return result
            if isinstance(node.op, ast.Or) and result:
                return result
        return result

    def on_Compare(self, node: ast.Compare) -> bool:
        left = self._concrete(self.eval(node.left))
        for op, comp in zip(node.ops, node.comparators):
            right = self._concrete(self.eval(comp))
            try:
                if not _CMP[type(op)](left, right):
                    return False
            except Exception as exc:
                raise EvalError(str(exc)) from None
            left = right
        return True

    def on_IfExp(self, node: ast.IfExp) -> Any:
        test = self._concrete(self.eval(node.test))
        return self.eval(node.body if test else node.orelse)

    def on_Subscript(self, node: ast.Subscript) -> Any:
        value = self._concrete(self.eval(node.value))
        index = self.eval(node.slice)
        try:
            return value[index]
        except Exception as exc:
            raise EvalError(str(exc)) from None

    def on_Slice(self, node: ast.Slice) -> slice:
        parts = [self._concrete(self.eval(p)) if p is not None else None for p in (node.lower, node.upper, node.step)]
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
        for value in self._iterate(inner.eval(gen.iter)):
            new_scope = dict(scope)
            _bind(gen.target, value, new_scope)
            sub = self.child(new_scope)
            if all(sub._concrete(sub.eval(cond)) for cond in gen.ifs):
                for out in self._comprehend(gens, i + 1, elt, new_scope):
                    count += 1
                    if count > MAX_SEQUENCE:
                        raise EvalError("comprehension too long")
                    yield out

    # -- calls -------------------------------------------------------------------
    def on_Call(self, node: ast.Call) -> Any:
        func = node.func
        if self._is_pytest_param(func):
            return self._param(node)
        name = func.id if isinstance(func, ast.Name) else None
        if name is not None and name not in self.locals and name not in self.env.values:
            if name in self.env.functions or name in self.env.classes:
                fn = self.env.functions.get(name)
                body = _single_return(fn) if fn is not None else None
                if fn is not None and body is not None:
                    return self.call(Lambda([a.arg for a in fn.args.args], body, name), self._args(node))
                return Opaque(certain=False)
            if name == "getattr" and len(node.args) in (2, 3) and not node.keywords:
                return self._getattr(node)
            if name in ("list", "tuple", "sorted") and len(node.args) == 1:
                target = self.eval(node.args[0])
                if isinstance(target, Named) and target.enum is not None:
                    return [self._member(target.name, target.enum, m) for m in target.enum.members]
            if name == "str" and len(node.args) == 1 and not node.keywords:
                arg = self.eval(node.args[0])
                if isinstance(arg, PathValue):
                    return arg.text
            if name in _PURE_BUILTINS and name not in self.env.imported:
                args = [self._concrete(a) for a in self._args(node)]
                if node.keywords:
                    raise EvalError("keyword arguments to builtins are not evaluated")
                try:
                    result = _PURE_BUILTINS[name](*args)
                except Exception as exc:
                    raise EvalError(str(exc)) from None
                if isinstance(result, range):
                    if len(result) > MAX_SEQUENCE:
                        raise EvalError("range too long")
                    return list(result)
                return self._bound(result)
            if name in _OBJECT_BUILTINS and name not in self.env.imported:
                return Opaque()
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            if func.value.id in self.env.enums:  # Color("red") -> a member, not known which
                raise EvalError("enum lookup by value")
        value = None
        try:
            value = self.eval(func)
        except EvalError:
            pass
        if isinstance(value, Named) and (value.qual in _PATH_CLASSES or value.name == "Path" and "Path" in self.env.imported):
            parts = [self._concrete(a) for a in self._args(node)]
            if all(isinstance(p, str) for p in parts):
                import pathlib

                return PathValue(str(pathlib.PurePosixPath(*parts)))
        if isinstance(value, Named) and (value.qual or value.name) == "re.compile" and node.args:
            pattern = self._concrete(self.eval(node.args[0]))
            if isinstance(pattern, (str, bytes)):
                return PatternValue(pattern)
        if isinstance(value, Named) and (value.qual or value.name) in _MODULE_FUNCTIONS:
            qual = value.qual or value.name
            args = self._args(node) if qual.startswith("itertools.") else [self._concrete(a) for a in self._args(node)]
            if qual.startswith("itertools.") and not all(isinstance(a, (list, tuple, str, bytes, int)) for a in args):
                raise EvalError(f"{qual} of values not known statically")
            try:
                return self._bound(_MODULE_FUNCTIONS[value.qual or value.name](*args))
            except Exception as exc:
                raise EvalError(str(exc)) from None
        if isinstance(value, Lambda):
            return self.call(value, self._args(node))
        if isinstance(value, str) and isinstance(func, ast.Attribute):
            return self._str_method(value, func.attr, node)
        # Some other call: most likely builds an object (np.array(...), Foo(...)).
        return Opaque(certain=False)

    def _getattr(self, node: ast.Call) -> Any:
        obj = self.eval(node.args[0])
        attr = self._concrete(self.eval(node.args[1]))
        has_default = len(node.args) == 3
        if attr == "__name__" and isinstance(obj, (Named, Lambda)):
            return obj.name if not isinstance(obj, Named) or obj.certain else Named(obj.name, certain=False)
        if attr == "__name__" and has_default:
            if isinstance(obj, Opaque) and not obj.certain:
                return Opaque(certain=False)  # might have a __name__: a guess
            return self.eval(node.args[2])
        raise EvalError("getattr is not evaluated statically")

    def _str_method(self, value: str, attr: str, node: ast.Call) -> Any:
        allowed = {"format", "join", "upper", "lower", "strip", "replace", "split", "title", "encode"}
        if attr not in allowed or node.keywords and attr != "format":
            return Opaque(certain=False)
        args = [self._concrete(a) for a in self._args(node)]
        kwargs = {k.arg: self._concrete(self.eval(k.value)) for k in node.keywords if k.arg}
        try:
            return self._bound(getattr(value, attr)(*args, **kwargs))
        except Exception as exc:
            raise EvalError(str(exc)) from None

    def _args(self, node: ast.Call) -> list[Any]:
        return self._elements(node.args)

    def call(self, fn: Lambda, args: list[Any]) -> Any:
        if len(args) != len(fn.params):
            raise EvalError("argument count mismatch")
        scope = dict(zip(fn.params, args))
        return self.child(scope).eval(fn.body)

    def _is_pytest_param(self, func: ast.expr) -> bool:
        if isinstance(func, ast.Attribute) and func.attr == "param":
            return isinstance(func.value, ast.Name) and func.value.id in self.env.pytest_names
        return isinstance(func, ast.Name) and func.id in self.env.param_names

    def _param(self, node: ast.Call) -> Param:
        values = self._elements(node.args)
        pid: Any = None
        marks: tuple[str, ...] = ()
        for kw in node.keywords:
            if kw.arg == "id":
                pid = self.eval(kw.value)  # an unknown id makes the whole set unknown
                if pid is not None and not isinstance(pid, str):
                    raise EvalError("pytest.param id is not a string")
            elif kw.arg == "marks":
                marks = tuple(mark_names(kw.value))
        return Param(tuple(values), pid, marks)

    # -- helpers -------------------------------------------------------------------
    def _concrete(self, value: Any) -> Any:
        if isinstance(value, (Opaque, Named, EnumMember, Param, Lambda, PatternValue, PathValue)):
            raise EvalError("value is not known statically")
        return value

    def _iterate(self, value: Any) -> list[Any]:
        if isinstance(value, (list, tuple, str, bytes, set)):
            return list(value)
        raise EvalError("not iterable statically")

    @staticmethod
    def _bound(value: Any) -> Any:
        if isinstance(value, (str, bytes)) and len(value) > MAX_STR:
            raise EvalError("string too long")
        return value


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


def _single_return(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> ast.expr | None:
    body = [s for s in fn.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    if isinstance(fn, ast.FunctionDef) and len(body) == 1 and isinstance(body[0], ast.Return):
        return body[0].value
    return None


def mark_names(node: ast.expr) -> list[str]:
    """Names of the marks in a `marks=` value or a `pytestmark` assignment."""
    elts = node.elts if isinstance(node, (ast.List, ast.Tuple)) else [node]
    names: list[str] = []
    for elt in elts:
        name = mark_name(elt)
        if name is not None:
            names.append(name)
    return names


def mark_name(node: ast.expr) -> str | None:
    """`pytest.mark.NAME` or `pytest.mark.NAME(...)` or `mark.NAME` -> NAME."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        value = node.value
        if isinstance(value, ast.Attribute) and value.attr == "mark":
            return node.attr
        if isinstance(value, ast.Name) and value.id == "mark":
            return node.attr
    return None
