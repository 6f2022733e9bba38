"""Pure static discovery: (path, source, options) -> the items pytest would collect.

Mirrors `_pytest.python`: module-level functions and classes in `__dict__`
order, classes without `__init__`/`__new__` and their methods (inherited
ones first, as pytest orders the MRO), nested classes, `unittest.TestCase`
subclasses (methods named `test*`, sorted), `__test__` attributes, fixtures
(never tests), and parametrization from marks and parametrized fixtures,
with pytest's ids. Nothing is imported; another module's classes come through
`Context.resolve` (the index parses them on demand).
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass, field

from tach_ls.discovery_inputs import CollectOptions, Context, NoContext, attach_resolver, matches_name, parse
from tach_ls.discovery_memo import DiscoveryMemo
from tach_ls.fingerprints import first_line
from tach_ls.fixtures_static import FixtureLookup, fixture_axes, fixture_from_def, request_names
from tach_ls.model import Collector, FileIndex, FixtureDef, RelPath, TestItem
from tach_ls.module_scan import Binding, ClassScan, FuncNode, ModuleScan, decorator_name, is_fixture_decorator, scan_module
from tach_ls.paramids import Axis, Unknown, axis_from_parametrize, combine
from tach_ls.static_eval import mark_name

_NO_FIXTURES: dict[str, FixtureDef] = {}  # shared, never mutated: a module function's class fixtures


def discover(
    relpath: RelPath,
    source: bytes,
    options: CollectOptions = CollectOptions(),
    context: Context | None = None,
    tree: ast.Module | None = None,
    scan: ModuleScan | None = None,
    memo: DiscoveryMemo | None = None,
) -> FileIndex:
    """Index one test module; `memo` (with `tree` and its lines) reuses the axes of a previous discovery."""
    result = FileIndex(relpath)
    if tree is None:
        tree, error = parse(relpath, source)
        if tree is None:
            assert error is not None
            result.errors.append(error)
            return result
    if scan is None:
        scan = scan_module(tree)
    _Discovery(relpath, tree, scan, options, context or NoContext(), result, memo).run()
    return result


@dataclass(eq=False)
class _ClassInfo:
    """A class resolved with its bases: what pytest sees through the MRO."""

    scan: ClassScan
    path: RelPath
    module: ModuleScan
    mro: list[_ClassInfo] = field(default_factory=list)
    unittest: bool = False
    unknown_bases: bool = False


class _Discovery:
    def __init__(self, relpath: RelPath, tree: ast.Module, scan: ModuleScan, options: CollectOptions, context: Context, out: FileIndex, memo: DiscoveryMemo | None = None) -> None:
        self.relpath = relpath
        self.tree = tree
        self.memo = memo
        self.scan = scan
        self.options = options
        self.context = context
        self.out = out
        self.module_marks = list(scan.mark_nodes)
        self.module_id = relpath
        self.conftest = context.conftest_fixtures(relpath)
        attach_resolver(scan.env, relpath, context)
        self.module_fixtures: dict[str, FixtureDef] = {}
        self._lookups: tuple[dict[str, FixtureDef], FixtureLookup] | None = None
        self._classes_read: set[str] | None = None  # while collecting a module-level class, for the memo

    def run(self) -> None:
        # The module ends with its last statement (the buffer's incremental tree moves statements, not expressions).
        end = (self.tree.body[-1].end_lineno or 1) if self.tree.body else 1
        self.out.collectors.append(Collector(self.module_id, self.relpath, self.relpath.rsplit("/", 1)[-1], "module", 1, end, 1, None, self._mark_names(self.module_marks)))
        for name, binding in self.scan.bindings.items():
            if binding.kind == "function" and isinstance(binding.node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if any(is_fixture_decorator(d) for d in binding.node.decorator_list):
                    fx = fixture_from_def(binding.node, self.relpath, self.scan.env, None, self.options.escape_ids)
                    self.module_fixtures[fx.name] = fx
                    self.out.fixtures.append(fx)
        for name, binding in self.scan.bindings.items():
            self._collect_module_name(name, binding)

    # -- module level -----------------------------------------------------------
    def _collect_module_name(self, name: str, binding: Binding) -> None:
        test_attr = self.scan.test_attrs.get(name)
        if binding.kind == "class" and binding.cls is not None:
            cls = binding.cls
            if self.memo is None:
                self._module_class(cls, test_attr)
            else:
                self.memo.classes(cls.node, test_attr, self.out, self._module_class_node, lambda: self._module_class(cls, test_attr))
        elif binding.kind == "function" and isinstance(binding.node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if test_attr is False:
                return
            if matches_name(name, self.options.python_functions) or test_attr is True:
                node = binding.node
                if self.memo is None:
                    self.out.items.extend(self._module_function(node, name, binding.conditional))
                else:
                    extra = (name, test_attr, binding.conditional)
                    self.out.items.extend(self.memo.items(node, extra, lambda: self._module_function(node, name, binding.conditional)))
        elif binding.kind == "import" and binding.imp is not None and self.options.collect_imported_tests:
            self._collect_imported(name, binding)

    def _module_class(self, cls: ClassScan, test_attr: bool | None) -> set[str]:
        """Collect a module-level class; the names of the module-level classes of this file it read."""
        self._classes_read = read = set[str]()
        try:
            info = self._class_info(cls, self.relpath, self.scan)
            self._collect_class(info, self.module_id, [], test_attr)
        finally:
            self._classes_read = None
        return read

    def _module_class_node(self, name: str) -> ast.ClassDef | None:
        binding = self.scan.bindings.get(name)
        return binding.cls.node if binding is not None and binding.kind == "class" and binding.cls is not None else None

    def _module_function(self, node: FuncNode, name: str, conditional: bool) -> list[TestItem]:
        """The items of a module-level test function (all dynamic if it is defined conditionally)."""
        before = len(self.out.items)
        self._collect_function(node, name, self.module_id, None, self.relpath)
        items = self.out.items[before:]
        del self.out.items[before:]
        if conditional:
            for item in items:
                item.dynamic = True
        return items

    def _collect_imported(self, name: str, binding: Binding) -> None:
        imp = binding.imp
        assert imp is not None
        if imp.name is None:
            return
        is_func = matches_name(name, self.options.python_functions)
        is_cls = matches_name(name, self.options.python_classes)
        if not (is_func or is_cls):
            return
        found = self.context.resolve(self.relpath, imp.module, imp.level, imp.name)
        if found is None:
            return
        path, mod = found
        target = mod.bindings.get(imp.name)
        if target is None:
            return
        if target.kind == "class" and target.cls is not None:
            info = self._class_info(target.cls, path, mod)
            self._collect_class(info, self.module_id, [], None, name=name)
        elif target.kind == "function" and is_func and isinstance(target.node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            self._collect_function(target.node, name, self.module_id, None, path)

    # -- classes -------------------------------------------------------------------
    def _class_info(self, cls: ClassScan, path: RelPath, module: ModuleScan, depth: int = 0) -> _ClassInfo:
        if path != self.relpath and self.memo is not None:
            self.memo.foreign_lines = True  # collectors of this class will hold another file's lines
        if self._classes_read is not None:
            # The memo keys a class by the text of the classes it read: this file's by name, another file's as "".
            self._classes_read.add(cls.name if path == self.relpath and "." not in cls.qualname else "" if path != self.relpath else cls.qualname.split(".")[0])
        info = _ClassInfo(cls, path, module)
        base_infos: list[_ClassInfo] = []
        for base in cls.bases:
            resolved = self._resolve_base(base, path, module, depth)
            if resolved is None:
                dotted = decorator_name(base)
                last = dotted.rsplit(".", 1)[-1]
                if last in module.testcase_names or dotted.split(".")[0] in module.unittest_names and last.endswith("TestCase"):
                    info.unittest = True
                elif last.endswith("TestCase"):
                    info.unittest = True  # django.test.TestCase, twisted, asynctest...
                elif dotted not in ("object", "ABC", "abc.ABC", "Generic", "typing.Generic", "Protocol") and not isinstance(base, ast.Subscript):
                    info.unknown_bases = True
            else:
                base_infos.append(resolved)
                info.unittest = info.unittest or resolved.unittest
                info.unknown_bases = info.unknown_bases or resolved.unknown_bases
        info.mro = [info, *_linearize(base_infos)]
        return info

    def _resolve_base(self, base: ast.expr, path: RelPath, module: ModuleScan, depth: int) -> _ClassInfo | None:
        if depth > 20:
            return None
        if isinstance(base, ast.Name):
            binding = module.bindings.get(base.id)
            if binding is None:
                return None
            if binding.kind == "class" and binding.cls is not None:
                return self._class_info(binding.cls, path, module, depth + 1)
            if binding.kind == "import" and binding.imp is not None and binding.imp.name is not None:
                if base.id in module.testcase_names:
                    return None
                found = self.context.resolve(path, binding.imp.module, binding.imp.level, binding.imp.name)
                if found is not None:
                    other_path, other = found
                    target = other.bindings.get(binding.imp.name)
                    if target is not None and target.kind == "class" and target.cls is not None:
                        return self._class_info(target.cls, other_path, other, depth + 1)
        elif isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name):
            binding = module.bindings.get(base.value.id)
            if binding is not None and binding.kind == "import" and binding.imp is not None and binding.imp.name is None:
                found = self.context.resolve(path, binding.imp.module, 0, None)
                if found is not None:
                    other_path, other = found
                    target = other.bindings.get(base.attr)
                    if target is not None and target.kind == "class" and target.cls is not None:
                        return self._class_info(target.cls, other_path, other, depth + 1)
        return None

    def _class_attr(self, info: _ClassInfo, attr: str) -> bool | None:
        for klass in info.mro:
            if attr == "__test__" and klass.scan.test_attr is not None:
                return klass.scan.test_attr
        return None

    def _collect_class(self, info: _ClassInfo, parent: str, outer: list[_ClassInfo], module_test_attr: bool | None, name: str | None = None) -> None:
        cls = info.scan
        name = name or cls.name
        test_attr = self._class_attr(info, "__test__")
        if module_test_attr is not None:
            test_attr = module_test_attr
        if info.unittest:
            if test_attr is False:
                return
            self._collect_unittest(info, parent, name)
            return
        if not (matches_name(name, self.options.python_classes) or test_attr is True):
            return
        if test_attr is False:
            return
        if any(k.scan.abstract for k in info.mro) and self._is_abstract(info):
            return
        nodeid = f"{parent}::{name}"
        node = cls.node
        own_path = info.path
        marks = self._class_marks(info)
        self.out.collectors.append(self._collector(nodeid, name, node, parent, marks, own_path))
        if any(k.scan.has_init or k.scan.has_new for k in info.mro):
            return  # pytest warns "cannot collect test class ... __init__ constructor" and collects nothing
        class_fixtures = self._class_fixtures(info)
        seen: set[str] = set()
        per_class: list[list[tuple[str, Binding, _ClassInfo]]] = []
        for klass in info.mro:
            values: list[tuple[str, Binding, _ClassInfo]] = []
            for attr, binding in klass.scan.bindings.items():
                if attr in seen:
                    continue
                seen.add(attr)
                values.append((attr, binding, klass))
            per_class.append(values)
        for values in reversed(per_class):
            for attr, binding, klass in values:
                if binding.kind == "function" and isinstance(binding.node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    if matches_name(attr, self.options.python_functions):
                        self._collect_method(binding.node, attr, nodeid, [info, *outer], klass, class_fixtures)
                elif binding.kind == "class" and binding.cls is not None:
                    if any(k.scan is binding.cls for c in (info, *outer) for k in c.mro):
                        continue  # `class Base:` holding `class TestIn(Base)`: names resolve to the last binding, a cycle
                    sub = self._class_info(binding.cls, klass.path, klass.module)
                    self._collect_class(sub, nodeid, [info, *outer], None)

    def _collect_method(self, node: FuncNode, attr: str, parent: str, classes: list[_ClassInfo], klass: _ClassInfo, class_fixtures: dict[str, FixtureDef]) -> None:
        if self.memo is None or klass.path != self.relpath:
            self._collect_function(node, attr, parent, classes, klass.path, class_fixtures)
            return

        def collect() -> list[TestItem]:
            before = len(self.out.items)
            self._collect_function(node, attr, parent, classes, klass.path, class_fixtures)
            items = self.out.items[before:]
            del self.out.items[before:]
            return items

        self.out.items.extend(self.memo.items(node, ("method", attr, parent, klass.scan.qualname), collect))

    def _is_abstract(self, info: _ClassInfo) -> bool:
        abstract: set[str] = set()
        for klass in reversed(info.mro):
            for attr, binding in klass.scan.bindings.items():
                node = binding.node
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and any(decorator_name(d).endswith("abstractmethod") for d in node.decorator_list):
                    abstract.add(attr)
                else:
                    abstract.discard(attr)
        return bool(abstract)

    def _collect_unittest(self, info: _ClassInfo, parent: str, name: str) -> None:
        nodeid = f"{parent}::{name}"
        self.out.collectors.append(self._collector(nodeid, name, info.scan.node, parent, self._class_marks(info), info.path))
        found: dict[str, tuple[ast.FunctionDef | ast.AsyncFunctionDef, _ClassInfo]] = {}
        for klass in reversed(info.mro):
            for attr, binding in klass.scan.bindings.items():
                if isinstance(binding.node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    found[attr] = (binding.node, klass)
                else:
                    found.pop(attr, None)
        names = sorted(a for a in found if a.startswith("test"))
        if not names and "runTest" in found:
            names = ["runTest"]
        for attr in names:
            node, klass = found[attr]
            item = self._item(f"{nodeid}::{attr}", attr, attr, "method", node, nodeid, klass.path)
            item.unittest = True
            if klass.path != self.relpath:
                item.defined_in = klass.path
            item.markers = self._mark_names(self._function_marks(node)) + self._mark_names(self._class_marks(info)) + self._mark_names(self.module_marks)
            item.markers = list(dict.fromkeys(item.markers))
            if info.unknown_bases:
                item.dynamic = True
            self.out.items.append(item)

    def _class_marks(self, info: _ClassInfo) -> list[ast.expr]:
        marks: list[ast.expr] = []
        for klass in info.mro:
            marks.extend(klass.scan.mark_nodes)
        return marks

    def _class_fixtures(self, info: _ClassInfo) -> dict[str, FixtureDef]:
        found: dict[str, FixtureDef] = {}
        for klass in reversed(info.mro):
            for attr, binding in klass.scan.bindings.items():
                node = binding.node
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and any(is_fixture_decorator(d) for d in node.decorator_list):
                    fx = fixture_from_def(node, klass.path, klass.module.env, klass.scan.name, self.options.escape_ids)
                    found[fx.name] = fx
                    if klass is info and klass.path == self.relpath:
                        self.out.fixtures.append(fx)
        return found

    # -- functions -----------------------------------------------------------------
    def _collect_function(
        self,
        node: FuncNode,
        name: str,
        parent: str,
        classes: list[_ClassInfo] | None,
        path: RelPath,
        class_fixtures: dict[str, FixtureDef] | None = None,
    ) -> None:
        if any(is_fixture_decorator(d) for d in node.decorator_list):
            return
        kind = "method" if classes else "function"
        func_marks = self._function_marks(node)
        chain_marks = list(func_marks)
        for info in classes or []:
            chain_marks.extend(self._class_marks(info))
        chain_marks.extend(self.module_marks)
        marker_names = self._mark_names(chain_marks)
        is_static = any(decorator_name(d) in ("staticmethod",) for d in node.decorator_list)
        argnames = request_names(node, bool(classes) and not is_static)
        usefixtures = _usefixtures(chain_marks)
        base = self._item(f"{parent}::{name}", name, name, kind, node, parent, path)
        base.markers = marker_names
        base.fixtures = list(dict.fromkeys(usefixtures + argnames))
        if path != self.relpath:
            base.defined_in = path
        if classes and any(c.unknown_bases for c in classes):
            base.dynamic = True
        # Only this file's own marks may be memoized by their text (see discovery_memo).
        own = path == self.relpath and all(k.path == self.relpath for info in classes or [] for k in info.mro)
        try:
            axes = self._axes(node, chain_marks, argnames, usefixtures, class_fixtures or _NO_FIXTURES, own)
            direct = {n for a in axes for n in a.argnames if n not in a.indirect}
            if direct:
                base.fixtures = [f for f in base.fixtures if f not in direct]
        except Unknown:
            base.dynamic = True
            self.out.items.append(base)
            return
        if not axes:
            self.out.items.append(base)
            return
        uncertain = any(a.uncertain for a in axes)
        line, end, start = base.line, base.end_line, base.start_line
        for ident, extra_marks in combine(axes):
            item = TestItem(f"{parent}::{name}[{ident}]", self.relpath, f"{name}[{ident}]", name, kind, line, end, start, parent)  # type: ignore[arg-type]
            item.params_id = ident
            item.markers = list(dict.fromkeys(marker_names + list(extra_marks))) if extra_marks else marker_names
            item.fixtures = base.fixtures
            item.defined_in = base.defined_in
            item.dynamic = base.dynamic or uncertain
            self.out.items.append(item)

    def _axes(self, node: FuncNode, marks: list[ast.expr], argnames: list[str], usefixtures: list[str], class_fixtures: dict[str, FixtureDef], own: bool = False) -> list[Axis]:
        mark_axes: list[Axis] = []
        env, escape = self.scan.env, self.options.escape_ids
        for mark in marks:
            if mark_name(mark) == "parametrize" and isinstance(mark, ast.Call):
                if own and self.memo is not None:
                    mark_axes.append(self.memo.axis(mark, escape, functools.partial(axis_from_parametrize, mark, env, escape)))
                else:
                    mark_axes.append(axis_from_parametrize(mark, env, escape))
        direct = {n for a in mark_axes for n in a.argnames if n not in a.indirect}
        parametrized = {n for a in mark_axes for n in a.argnames}
        lookup = self._lookup(class_fixtures)
        fixture_axis_list = fixture_axes(usefixtures + argnames, lookup, direct, parametrized, self.options.escape_ids)
        return fixture_axis_list + mark_axes

    def _lookup(self, class_fixtures: dict[str, FixtureDef]) -> FixtureLookup:
        """Fixtures visible from a test: conftests, then this module, then its classes (built once per class)."""
        if self._lookups is not None and self._lookups[0] is class_fixtures:
            return self._lookups[1]
        lookup: FixtureLookup = {k: list(v) for k, v in self.conftest.items()}
        for scope in (self.module_fixtures, class_fixtures):
            for fx_name, fx in scope.items():
                lookup.setdefault(fx_name, []).append(fx)
        self._lookups = (class_fixtures, lookup)
        return lookup

    def _function_marks(self, node: FuncNode) -> list[ast.expr]:
        # Decorators apply bottom-up, and pytest lists a function's marks in that order.
        return [d for d in reversed(node.decorator_list) if mark_name(d) is not None]

    @staticmethod
    def _mark_names(marks: list[ast.expr]) -> list[str]:
        names = [mark_name(m) for m in marks]
        return list(dict.fromkeys(n for n in names if n))

    def _item(self, nodeid: str, name: str, original: str, kind: str, node: FuncNode, parent: str, path: RelPath) -> TestItem:
        return TestItem(nodeid, self.relpath, name, original, kind, node.lineno, node.end_lineno or node.lineno, first_line(node), parent)  # type: ignore[arg-type]

    def _collector(self, nodeid: str, name: str, node: ast.ClassDef, parent: str, marks: list[ast.expr], path: RelPath) -> Collector:
        return Collector(nodeid, self.relpath, name, "class", node.lineno, node.end_lineno or node.lineno, first_line(node), parent, self._mark_names(marks))


def _usefixtures(marks: list[ast.expr]) -> list[str]:
    names: list[str] = []
    for mark in marks:
        if mark_name(mark) == "usefixtures" and isinstance(mark, ast.Call):
            names.extend(a.value for a in mark.args if isinstance(a, ast.Constant) and isinstance(a.value, str))
    return names


def _linearize(bases: list[_ClassInfo]) -> list[_ClassInfo]:
    """C3 linearization of the resolved bases (falls back to depth-first if inconsistent)."""
    seqs = [list(b.mro) for b in bases] + [list(bases)]
    result: list[_ClassInfo] = []
    while True:
        seqs = [s for s in seqs if s]
        if not seqs:
            return result
        for seq in seqs:
            head = seq[0]
            if not any(head in s[1:] for s in seqs):
                break
        else:
            flat: list[_ClassInfo] = []
            for b in bases:
                for k in b.mro:
                    if k not in flat:
                        flat.append(k)
            return flat
        result.append(head)
        for s in seqs:
            if s and s[0] is head:
                del s[0]
