"""One pass over a module's AST: what pytest would find in the module's `__dict__`.

The scan records, in definition order, the names a module binds at top level
(functions, classes, imports, assignments), descending into `if`/`try`/`with`
blocks since their bodies run at import. Classes are scanned the same way for
their own `__dict__`. The result feeds `discovery_ast` (tests) and other
modules' scans (base classes imported from this one).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from tach_ls.static_eval import EnumClass, Env, EvalError, Evaluator

FuncNode = ast.FunctionDef | ast.AsyncFunctionDef
_ENUM_BASES = {"Enum", "IntEnum", "StrEnum", "Flag", "IntFlag", "ReprEnum"}
_VALUE_STR_ENUMS = {"IntEnum", "StrEnum", "IntFlag", "ReprEnum"}


@dataclass(slots=True)
class Import:
    """`from MODULE import NAME` (or `import MODULE`): resolved lazily by the index."""

    module: str | None
    name: str | None  # None for `import module`
    level: int
    line: int


@dataclass(slots=True)
class Binding:
    """What one name is bound to, and where (the last binding wins, the first sets the order)."""

    kind: str  # "function", "class", "import", "value"
    node: ast.AST | None = None
    cls: ClassScan | None = None
    imp: Import | None = None
    conditional: bool = False  # bound under an `if` whose test is not static: may not exist at import


@dataclass(slots=True)
class ClassScan:
    name: str
    node: ast.ClassDef
    qualname: str
    bases: list[ast.expr]
    bindings: dict[str, Binding] = field(default_factory=dict)
    mark_nodes: list[ast.expr] = field(default_factory=list)  # body pytestmark, then decorators bottom-up
    test_attr: bool | None = None  # `__test__ = ...` in the body
    has_init: bool = False
    has_new: bool = False
    abstract: bool = False  # defines @abstractmethod (abstractness is checked with bases later)


@dataclass(slots=True)
class ModuleScan:
    """The static view of one module."""

    bindings: dict[str, Binding] = field(default_factory=dict)
    env: Env = field(default_factory=Env)
    mark_nodes: list[ast.expr] = field(default_factory=list)  # module pytestmark
    test_attrs: dict[str, bool] = field(default_factory=dict)  # `name.__test__ = False` after the def
    collect_ignore: list[str] = field(default_factory=list)  # conftest literals
    collect_ignore_glob: list[str] = field(default_factory=list)
    unittest_names: set[str] = field(default_factory=lambda: {"unittest"})  # aliases of unittest
    testcase_names: set[str] = field(default_factory=set)  # names bound to unittest.TestCase & co.


def decorator_name(node: ast.expr) -> str:
    """Dotted name of a decorator, without its call: `pytest.mark.skip(...)` -> "pytest.mark.skip"."""
    if isinstance(node, ast.Call):
        node = node.func
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def is_fixture_decorator(node: ast.expr) -> bool:
    name = decorator_name(node)
    last = name.rsplit(".", 1)[-1]
    return last in ("fixture", "yield_fixture") and (name == last or name.split(".")[0] in ("pytest", "pytest_asyncio", "pytest_trio"))


def scan_module(tree: ast.Module) -> ModuleScan:
    scan = ModuleScan()
    _scan_block(tree.body, scan, None)
    return scan


def _scan_block(stmts: list[ast.stmt], scan: ModuleScan, cls: ClassScan | None) -> None:
    bindings = cls.bindings if cls is not None else scan.bindings
    for stmt in stmts:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            bindings[stmt.name] = Binding("function", stmt)
            if cls is None:
                scan.env.functions[stmt.name] = stmt
                scan.env.values.pop(stmt.name, None)
            else:
                if stmt.name == "__init__":
                    cls.has_init = True
                elif stmt.name == "__new__":
                    cls.has_new = True
                if any(decorator_name(d).endswith("abstractmethod") for d in stmt.decorator_list):
                    cls.abstract = True
        elif isinstance(stmt, ast.ClassDef):
            qual = f"{cls.qualname}.{stmt.name}" if cls is not None else stmt.name
            sub = ClassScan(stmt.name, stmt, qual, list(stmt.bases))
            _scan_block(stmt.body, scan, sub)
            sub.mark_nodes.extend(reversed(stmt.decorator_list))
            bindings[stmt.name] = Binding("class", stmt, cls=sub)
            if cls is None:
                _register_class(scan, sub)
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            _scan_import(stmt, scan, bindings, cls is None)
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            _scan_assign(stmt, scan, cls)
        elif isinstance(stmt, ast.Expr) and cls is None:
            _scan_call_statement(stmt, scan)
        elif isinstance(stmt, ast.Delete):
            for target in stmt.targets:
                if isinstance(target, ast.Name):
                    bindings.pop(target.id, None)
        elif isinstance(stmt, ast.If):
            branch = _static_condition(stmt.test, scan)
            before = set(bindings) if branch is None else set()
            if branch is not False:
                _scan_block(stmt.body, scan, cls)
            if branch is not True:
                _scan_block(stmt.orelse, scan, cls)
            if branch is None:
                for name, binding in bindings.items():
                    if name not in before and binding.kind in ("function", "class"):
                        binding.conditional = True
        elif isinstance(stmt, (ast.With, ast.AsyncWith)):
            _scan_block(stmt.body, scan, cls)
        elif isinstance(stmt, ast.Try) or type(stmt).__name__ == "TryStar":
            _scan_block(stmt.body, scan, cls)  # type: ignore[attr-defined]
            for handler in stmt.handlers:  # type: ignore[attr-defined]
                _scan_block(handler.body, scan, cls)
                if cls is None:
                    # A name set in an except handler depends on what is installed: not static.
                    for node in ast.walk(ast.Module(body=handler.body, type_ignores=[])):
                        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                            scan.env.values.pop(node.id, None)
                            scan.env.imported.add(node.id)
            _scan_block(stmt.orelse, scan, cls)  # type: ignore[attr-defined]
            _scan_block(stmt.finalbody, scan, cls)  # type: ignore[attr-defined]


def _static_condition(test: ast.expr, scan: ModuleScan) -> bool | None:
    """The value of an `if` test when it is static (`sys.version_info >= (3, 11)`), else None."""
    try:
        return bool(Evaluator(scan.env).eval(test))
    except (EvalError, RecursionError):
        return None
    except Exception:  # e.g. comparing a tuple with an object: not static
        return None


def _register_class(scan: ModuleScan, sub: ClassScan) -> None:
    base_names = {decorator_name(b).rsplit(".", 1)[-1] for b in sub.bases}
    enum_bases = base_names & (_ENUM_BASES | set(scan.env.enums))
    if enum_bases:
        members: dict[str, object] = {}
        flag = bool(base_names & {"Flag", "IntFlag"})
        last: object = 0
        for name, binding in sub.bindings.items():
            if binding.kind == "value" and not name.startswith("_"):
                node = binding.node
                if isinstance(node, ast.Call) and decorator_name(node).rsplit(".", 1)[-1] == "auto":
                    # enum.auto(): 1, 2, 3... or, for flags, the next power of two.
                    if isinstance(last, int):
                        last = (1 << last.bit_length()) if flag else last + 1
                    else:
                        last = None
                    members[name] = last
                else:
                    members[name] = last = getattr(node, "_tach_value", None)
        value_str = bool(base_names & _VALUE_STR_ENUMS) or "str" in base_names and "Enum" not in base_names
        scan.env.enums[sub.name] = EnumClass(sub.name, members, value_str)
    else:
        scan.env.classes.add(sub.name)
    scan.env.values.pop(sub.name, None)


def _scan_import(stmt: ast.Import | ast.ImportFrom, scan: ModuleScan, bindings: dict[str, Binding], top: bool) -> None:
    if isinstance(stmt, ast.Import):
        for alias in stmt.names:
            local = alias.asname or alias.name.split(".")[0]
            bindings[local] = Binding("import", stmt, imp=Import(alias.name, None, 0, stmt.lineno))
            if top:
                scan.env.imported.add(local)
                scan.env.imports[local] = (alias.name if alias.asname else local, None, 0)
                if alias.name == "pytest":
                    scan.env.pytest_names.add(local)
                elif alias.name == "math":
                    scan.env.math_names.add(local)
                elif alias.name == "sys":
                    scan.env.sys_names.add(local)
                elif alias.name == "unittest":
                    scan.unittest_names.add(local)
        return
    for alias in stmt.names:
        if alias.name == "*":
            continue
        local = alias.asname or alias.name
        bindings[local] = Binding("import", stmt, imp=Import(stmt.module, alias.name, stmt.level, stmt.lineno))
        if not top:
            continue
        scan.env.imported.add(local)
        scan.env.imports[local] = (stmt.module, alias.name, stmt.level)
        scan.env.values.pop(local, None)
        if stmt.module == "pytest" and alias.name == "param":
            scan.env.param_names.add(local)
        if stmt.module in ("unittest", "unittest.case", "twisted.trial.unittest") or alias.name.endswith("TestCase"):
            if alias.name in ("TestCase", "IsolatedAsyncioTestCase", "FunctionTestCase") or alias.name.endswith("TestCase"):
                scan.testcase_names.add(local)
        if stmt.module == "enum" and alias.name in _ENUM_BASES:
            pass  # enum bases are recognised by name


def _scan_assign(stmt: ast.Assign | ast.AnnAssign | ast.AugAssign, scan: ModuleScan, cls: ClassScan | None) -> None:
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
    value = stmt.value
    if value is None:
        return
    bindings = cls.bindings if cls is not None else scan.bindings
    for target in targets:
        if isinstance(target, ast.Name):
            name = target.id
            if name == "pytestmark":
                marks = value.elts if isinstance(value, (ast.List, ast.Tuple)) else [value]
                if cls is not None:
                    cls.mark_nodes[:0] = list(marks)  # body marks come before decorators
                elif isinstance(stmt, ast.AugAssign):
                    scan.mark_nodes.extend(marks)
                else:
                    scan.mark_nodes = list(marks)
                continue
            if name == "__test__" and cls is not None:
                cls.test_attr = _truthy(value)
                continue
            if cls is None and name in ("collect_ignore", "collect_ignore_glob"):
                _collect_ignore(scan, name, value, isinstance(stmt, ast.AugAssign))
            if isinstance(stmt, ast.AugAssign):
                continue
            binding = Binding("value", value)
            if cls is not None:
                # Enum member values are evaluated against the module's names.
                try:
                    object.__setattr__(value, "_tach_value", Evaluator(scan.env).eval(value))
                except (EvalError, RecursionError):
                    pass
            elif isinstance(value, ast.Name) and value.id in scan.env.functions:
                binding = Binding("function", scan.env.functions[value.id])  # test_b = test_a
            bindings[name] = binding
            if cls is None:
                scan.env.values[name] = value
                scan.env.cache.pop(name, None)
        elif isinstance(target, ast.Attribute) and target.attr == "__test__" and isinstance(target.value, ast.Name):
            flag = _truthy(value)
            if flag is not None:
                scan.test_attrs[target.value.id] = flag
        elif isinstance(target, (ast.Tuple, ast.List)):
            for elt in target.elts:
                if isinstance(elt, ast.Name):
                    bindings[elt.id] = Binding("value", None)
                    if cls is None:
                        scan.env.imported.add(elt.id)  # unknown value


def _truthy(node: ast.expr) -> bool | None:
    if isinstance(node, ast.Constant):
        return bool(node.value)
    return None


def _collect_ignore(scan: ModuleScan, name: str, value: ast.expr, augmented: bool) -> None:
    target = scan.collect_ignore if name == "collect_ignore" else scan.collect_ignore_glob
    if not augmented:
        target.clear()
    if isinstance(value, (ast.List, ast.Tuple)):
        target.extend(e.value for e in value.elts if isinstance(e, ast.Constant) and isinstance(e.value, str))


def _scan_call_statement(stmt: ast.Expr, scan: ModuleScan) -> None:
    """`collect_ignore.append("x")` / `.extend([...])` at module level (unconditional or not)."""
    call = stmt.value
    if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Attribute):
        return
    owner = call.func.value
    if not isinstance(owner, ast.Name) or owner.id not in ("collect_ignore", "collect_ignore_glob"):
        return
    target = scan.collect_ignore if owner.id == "collect_ignore" else scan.collect_ignore_glob
    if call.func.attr == "append" and call.args and isinstance(call.args[0], ast.Constant):
        if isinstance(call.args[0].value, str):
            target.append(call.args[0].value)
    elif call.func.attr == "extend" and call.args and isinstance(call.args[0], (ast.List, ast.Tuple)):
        target.extend(e.value for e in call.args[0].elts if isinstance(e, ast.Constant) and isinstance(e.value, str))
