"""How the static evaluator treats calls: ``pytest.param``, functions of one ``return``, pure builtins,
``pathlib``/``re``/``itertools`` constructors, ``getattr`` and string methods; and the names of marks.

A mixin of ``static_eval.Evaluator`` (which holds the environment, the step
budget and every other node kind); whatever call it cannot compute is a
guessed ``Opaque``.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Any

from tach_ls.static_tables import (
    _MODULE_FUNCTIONS,
    _OBJECT_BUILTINS,
    _PATH_CLASSES,
    _PURE_BUILTINS,
    MAX_SEQUENCE,
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
    bound,
    concrete,
)

if TYPE_CHECKING:
    from tach_ls.static_eval import Env, Evaluator


class CallRules:
    """``on_Call`` and what it needs, for ``Evaluator``."""

    # What it uses of ``Evaluator``, which defines each of these.
    env: Env
    locals: dict[str, Any]

    def eval(self, node: ast.expr) -> Any:
        raise NotImplementedError

    def child(self, scope: dict[str, Any]) -> Evaluator:
        raise NotImplementedError

    def _elements(self, elts: list[ast.expr]) -> list[Any]:
        raise NotImplementedError

    def _member(self, enum_name: str, enum: EnumClass, attr: str) -> EnumMember:
        raise NotImplementedError

    def on_Call(self, node: ast.Call) -> Any:
        func = node.func
        if self._is_pytest_param(func):
            return self._param(node)
        name = func.id if isinstance(func, ast.Name) else None
        if name is not None and name not in self.locals and name not in self.env.values:
            if name in self.env.functions or name in self.env.classes:
                fn = self.env.functions.get(name)
                body = single_return(fn) if fn is not None else None
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
                args = [concrete(a) for a in self._args(node)]
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
                return bound(result)
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
            parts = [concrete(a) for a in self._args(node)]
            if all(isinstance(p, str) for p in parts):
                import pathlib

                return PathValue(str(pathlib.PurePosixPath(*parts)))
        if isinstance(value, Named) and (value.qual or value.name) == "re.compile" and node.args:
            pattern = concrete(self.eval(node.args[0]))
            if isinstance(pattern, (str, bytes)):
                return PatternValue(pattern)
        if isinstance(value, Named) and (value.qual or value.name) in _MODULE_FUNCTIONS:
            qual = value.qual or value.name
            args = self._args(node) if qual.startswith("itertools.") else [concrete(a) for a in self._args(node)]
            if qual.startswith("itertools.") and not all(isinstance(a, (list, tuple, str, bytes, int)) for a in args):
                raise EvalError(f"{qual} of values not known statically")
            try:
                return bound(_MODULE_FUNCTIONS[value.qual or value.name](*args))
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
        attr = concrete(self.eval(node.args[1]))
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
        args = [concrete(a) for a in self._args(node)]
        kwargs = {k.arg: concrete(self.eval(k.value)) for k in node.keywords if k.arg}
        try:
            return bound(getattr(value, attr)(*args, **kwargs))
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


def single_return(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> ast.expr | None:
    """The expression a function of one ``return`` statement (after its docstring) returns, or None."""
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
