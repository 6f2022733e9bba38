"""The static index must equal `pytest --collect-only -q`, node id for node id, in order.

Each case is a small project written to a temporary folder; the test runs
real pytest on it and compares. A failure here means a collection rule of
pytest is not mirrored: the case's name says which.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tach_ls.index import WorkspaceIndex
from tests.parity import pytest_collect, write_tree

CASES: dict[str, dict[str, str | bytes]] = {
    # -- functions, classes, methods ------------------------------------------------
    "functions_and_async": {
        "test_a.py": """
            import pytest
            def test_one(): pass
            async def test_two(): pass
            def helper(): pass
            def testsuffix(): pass
            @pytest.fixture
            def test_fixture_not_a_test(): pass
            lam = 1
        """,
    },
    "classes_nested_static_class_methods": {
        "test_cls.py": """
            class TestOuter:
                def test_a(self): pass
                @staticmethod
                def test_static(): pass
                @classmethod
                def test_cls(cls): pass
                class TestInner:
                    def test_b(self): pass
                    class TestDeep:
                        def test_c(self): pass
                class NotCollected:
                    def test_d(self): pass
            class TestWithInit:
                def __init__(self): pass
                def test_x(self): pass
            class TestWithNew:
                def __new__(cls): return object.__new__(cls)
                def test_y(self): pass
            class Helper:
                def test_z(self): pass
        """,
    },
    "dunder_test_attribute": {
        "test_t.py": """
            class TestOff:
                __test__ = False
                def test_a(self): pass
            class TestOn(TestOff):
                __test__ = True
            class Checker:
                __test__ = True
                def test_b(self): pass
            def test_c(): pass
            test_c.__test__ = False
            def test_d(): pass
        """,
    },
    "inheritance_same_file_and_order": {
        "test_inh.py": """
            class Base:
                def test_base_one(self): pass
                def test_overridden(self): pass
            class TestChild(Base):
                def test_child(self): pass
                def test_overridden(self): pass
            class TestGrand(TestChild):
                def test_grand(self): pass
            class Mixin:
                def test_mixin(self): pass
            class TestMulti(Mixin, Base):
                pass
        """,
    },
    "inheritance_from_imported_base": {
        "tests/__init__.py": "",
        "tests/bases.py": """
            class Contract:
                def test_contract_a(self): pass
                def test_contract_b(self): pass
        """,
        "tests/test_impl.py": """
            from tests.bases import Contract
            from .bases import Contract as Rel
            class TestImpl(Contract):
                def test_own(self): pass
            class TestRel(Rel):
                pass
        """,
    },
    "abstract_classes_skipped": {
        "test_abc.py": """
            import abc
            class TestAbstract(abc.ABC):
                @abc.abstractmethod
                def helper(self): ...
                def test_a(self): pass
            class TestConcrete(TestAbstract):
                def helper(self): return 1
        """,
    },
    "unittest_testcases": {
        "test_ut.py": """
            import unittest
            from unittest import TestCase
            class Whatever(unittest.TestCase):
                def test_z(self): pass
                def test_a(self): pass
                def helper(self): pass
            class Other(TestCase):
                def runTest(self): pass
            class Derived(Whatever):
                def test_m(self): pass
            class TestAsync(unittest.IsolatedAsyncioTestCase):
                async def test_async(self): pass
        """,
    },
    "redefinition_alias_and_conditional": {
        "test_redef.py": """
            import sys
            def test_a(): pass
            def test_b(): pass
            def test_a(): pass
            test_c = test_b
            if sys.version_info >= (3, 0):
                def test_new(): pass
            else:
                def test_old(): pass
            try:
                def test_in_try(): pass
            except ImportError:
                pass
            def test_gone(): pass
            del test_gone
        """,
    },
    "imported_test_functions": {
        "helpers/__init__.py": "",
        "helpers/shared.py": """
            def test_shared(): pass
            class TestShared:
                def test_method(self): pass
        """,
        "test_imp.py": """
            from helpers.shared import test_shared, TestShared
            def test_local(): pass
        """,
    },
    # -- parametrize --------------------------------------------------------------------
    "parametrize_values_and_escaping": {
        "test_p.py": """
            import enum, pytest
            class Color(enum.Enum):
                RED = 1
                GREEN = "g"
            class Num(enum.IntEnum):
                ONE = 1
            def named(): pass
            @pytest.mark.parametrize("v", [
                0, -1, 1.5, 1e100, -0.0, 3j, True, False, None, "plain", "with space", "a/b::c[d]",
                "tab\\there", "ünï", "", b"bytes", b"\\xff\\x00", Color.RED, Color.GREEN, Num.ONE,
                int, named, lambda: 1, object(), [1, 2], {"k": 1}, (1, 2), float("inf"),
            ])
            def test_v(v): pass
        """,
    },
    "parametrize_duplicates": {
        "test_dup.py": """
            import pytest
            @pytest.mark.parametrize("x", ["a", "a", "a1", "a", 1, 1, "1_0", 2.0, 2.0])
            def test_dup(x): pass
            @pytest.mark.parametrize("x", [1, 1], ids=["same", "same"])
            def test_dup_ids(x): pass
        """,
    },
    "parametrize_stacked_class_module": {
        "test_stack.py": """
            import pytest
            pytestmark = pytest.mark.parametrize("m", ["M1", "M2"])
            @pytest.mark.parametrize("a", [1, 2])
            @pytest.mark.parametrize("b", ["x", "y"])
            def test_fn(a, b, m): pass
            @pytest.mark.parametrize("c", [3])
            class TestC:
                pytestmark = [pytest.mark.parametrize("d", [4, 5])]
                @pytest.mark.parametrize("e", [6])
                def test_m(self, c, d, e, m): pass
        """,
    },
    "parametrize_argnames_forms_ids_and_param": {
        "test_forms.py": """
            import pytest
            from pytest import param
            @pytest.mark.parametrize("a, b", [(1, 2), (3, 4)])
            def test_str_names(a, b): pass
            @pytest.mark.parametrize(["a", "b"], [(1, 2), [3, 4]])
            def test_list_names(a, b): pass
            @pytest.mark.parametrize(("a",), [(1,), (2,)])
            def test_tuple_single(a): pass
            @pytest.mark.parametrize("a,", [(1,), (2,)])
            def test_trailing_comma(a): pass
            @pytest.mark.parametrize("a", [1, 2, 3], ids=["one", None, "three"])
            def test_ids_list(a): pass
            @pytest.mark.parametrize("a", [1, 2], ids=lambda v: f"n{v}")
            def test_ids_lambda(a): pass
            @pytest.mark.parametrize("a", [1, "x"], ids=str)
            def test_ids_str(a): pass
            @pytest.mark.parametrize("a,b", [
                pytest.param(1, 2, id="first"),
                param(3, 4, marks=pytest.mark.slow),
                pytest.param(5, 6, marks=[pytest.mark.xfail], id="third"),
            ])
            def test_param(a, b): pass
            @pytest.mark.parametrize("a", [])
            def test_empty(a): pass
            @pytest.mark.parametrize(argnames="a", argvalues=[7, 8])
            def test_kwargs(a): pass
        """,
    },
    "parametrize_computed_values": {
        "test_comp.py": """
            import pytest
            BASE = [1, 2]
            NAMES = ("x", "y")
            CASES = [(n, i) for i, n in enumerate(NAMES)]
            @pytest.mark.parametrize("v", BASE + [3])
            def test_const(v): pass
            @pytest.mark.parametrize("n,i", CASES)
            def test_comp(n, i): pass
            @pytest.mark.parametrize("r", range(3))
            def test_range(r): pass
            @pytest.mark.parametrize("s", [f"p{i}" for i in range(2)])
            def test_fstring(s): pass
            @pytest.mark.parametrize("w", [pytest.param(v, id=f"id-{v}") for v in BASE])
            def test_param_comp(w): pass
            @pytest.mark.parametrize("t", [x * 2 for x in BASE if x > 1])
            def test_filtered(t): pass
        """,
    },
    "parametrize_indirect": {
        "test_ind.py": """
            import pytest
            @pytest.fixture
            def db(request): return request.param
            @pytest.mark.parametrize("db", ["sqlite", "pg"], indirect=True)
            def test_db(db): pass
            @pytest.mark.parametrize("db, n", [("a", 1)], indirect=["db"])
            def test_partial(db, n): pass
        """,
    },
    "fixture_params": {
        "conftest.py": """
            import pytest
            @pytest.fixture(params=["sqlite", "pg"])
            def backend(request): return request.param
            @pytest.fixture(params=[1, 2], ids=["one", "two"])
            def size(request): return request.param
            @pytest.fixture
            def engine(backend): return backend
        """,
        "test_fx.py": """
            import pytest
            @pytest.fixture(params=[pytest.param(0, id="zero"), 5])
            def local(request): return request.param
            def test_backend(backend): pass
            def test_transitive(engine): pass
            def test_two(size, local): pass
            @pytest.mark.parametrize("x", ["a", "b"])
            def test_mixed(x, backend): pass
            @pytest.mark.parametrize("backend", ["override"])
            def test_overridden(backend): pass
            @pytest.mark.usefixtures("size")
            def test_usefixtures(): pass
            def test_plain(tmp_path): pass
        """,
    },
    "fixture_params_override_in_subdir_and_autouse": {
        "conftest.py": """
            import pytest
            @pytest.fixture(params=["a", "b"])
            def thing(request): return request.param
        """,
        "sub/conftest.py": """
            import pytest
            @pytest.fixture(params=["x"])
            def thing(request): return request.param
            @pytest.fixture(autouse=True, params=[1, 2])
            def everywhere(request): return request.param
        """,
        "sub/test_sub.py": """
            def test_thing(thing): pass
            def test_nothing(): pass
        """,
        "test_top.py": """
            def test_thing(thing): pass
        """,
    },
    "class_fixtures_with_params": {
        "test_clsfx.py": """
            import pytest
            class TestWithFixture:
                @pytest.fixture(params=[10, 20])
                def val(self, request): return request.param
                def test_val(self, val): pass
        """,
    },
    "mock_patch_args_are_not_fixtures": {
        "test_mock.py": """
            from unittest import mock
            import pytest
            @pytest.fixture(params=["p"])
            def real(request): return request.param
            @mock.patch("os.getcwd")
            def test_patched(m, real): pass
            def test_default_arg(real, x=1): pass
        """,
    },
    "parametrize_imported_values_and_enums": {
        "pkg/__init__.py": "",
        "pkg/consts.py": """
            import enum
            class Sentinel(enum.Enum):
                UNSET = object()
                NEEDS = enum.auto()
            class Num(enum.IntEnum):
                ONE = enum.auto()
                TWO = enum.auto()
            class Bits(enum.IntFlag):
                A = enum.auto()
                B = enum.auto()
                C = enum.auto()
            UNSET = Sentinel.UNSET
            NAMES = ["alpha", "beta"]
            def helper(): pass
        """,
        "test_imp_vals.py": """
            import pytest
            import pkg.consts
            from pkg.consts import UNSET, NAMES, Num, Bits, Sentinel, helper
            @pytest.mark.parametrize("v", [UNSET, Num.TWO, Bits.C, NAMES[0], helper, pkg.consts.helper])
            def test_vals(v): pass
            @pytest.mark.parametrize("s", tuple(Sentinel))
            def test_members(s): pass
            @pytest.mark.parametrize("m", [pkg.consts, pkg], ids=lambda m: m.__name__)
            def test_modules(m): pass
            @pytest.mark.parametrize("n", NAMES)
            def test_names(n): pass
        """,
    },
    "parametrize_stdlib_helpers": {
        "test_std.py": """
            import itertools, pathlib, re, sys, textwrap, copy
            import pytest
            @pytest.mark.parametrize("a,b", itertools.product([1, 2], ["x", "y"]))
            def test_product(a, b): pass
            @pytest.mark.parametrize("p", [str(pathlib.Path("a/b/../c.py")), pathlib.Path("x")])
            def test_path(p): pass
            @pytest.mark.parametrize("r", [re.compile(r"a+b"), re.escape("a.b c")])
            def test_re(r): pass
            @pytest.mark.parametrize("t", [textwrap.dedent("  hello\\n    world\\n")])
            def test_dedent(t): pass
            @pytest.mark.parametrize("s", [sys.stdout, sys.maxsize, copy.copy, KeyboardInterrupt, len])
            def test_real(s): pass
            @pytest.mark.parametrize("v", [1, "x", int], ids=lambda v: getattr(v, "__name__", v))
            def test_getattr_ids(v): pass
            @pytest.mark.parametrize("alter", [pytest.param(None, id=""), pytest.param(1, id="one")])
            @pytest.mark.parametrize("v", [1, 2])
            def test_empty_id(v, alter): pass
        """,
    },
    # -- configuration ---------------------------------------------------------------------
    "pytest_ini_custom_patterns": {
        "pytest.ini": """
            [pytest]
            python_files = check_*.py *_spec.py
            python_classes = Check *Suite
            python_functions = check_* should
        """,
        "check_a.py": """
            def check_one(): pass
            def should_work(): pass
            def test_not(): pass
            class CheckThings:
                def check_m(self): pass
            class MySuite:
                def should_x(self): pass
            class TestNot:
                def check_y(self): pass
        """,
        "b_spec.py": "def check_b(): pass\n",
        "test_ignored_name.py": "def check_c(): pass\n",
    },
    "pyproject_ini_options_testpaths_norecurse": {
        "pyproject.toml": """
            [tool.pytest.ini_options]
            testpaths = ["tests", "more"]
            norecursedirs = ["skipme", ".*"]
        """,
        "tests/test_a.py": "def test_a(): pass\n",
        "tests/skipme/test_s.py": "def test_s(): pass\n",
        "tests/build/test_build.py": "def test_build(): pass\n",
        "more/test_m.py": "def test_m(): pass\n",
        "other/test_o.py": "def test_o(): pass\n",
    },
    "pyproject_native_toml": {
        "pyproject.toml": """
            [tool.pytest]
            testpaths = ["t"]
            python_functions = ["it_"]
        """,
        "t/test_n.py": "def it_works(): pass\ndef test_no(): pass\n",
    },
    "pytest_toml_wins_over_pyproject": {
        "pytest.toml": """
            [pytest]
            python_functions = ["check_"]
        """,
        "pyproject.toml": """
            [tool.pytest.ini_options]
            python_functions = "never_"
        """,
        "test_t.py": "def check_a(): pass\ndef never_b(): pass\ndef test_c(): pass\n",
    },
    "collect_imported_tests_off": {
        "pytest.ini": """
            [pytest]
            collect_imported_tests = false
        """,
        "helpers.py": "def test_helper(): pass\n",
        "test_i.py": "from helpers import test_helper\ndef test_own(): pass\n",
    },
    "tox_ini_and_setup_cfg": {
        "tox.ini": """
            [tox]
            envlist = py3
            [pytest]
            python_files = spec_*.py
        """,
        "setup.cfg": """
            [tool:pytest]
            python_files = never_*.py
        """,
        "spec_x.py": "def test_x(): pass\n",
        "never_y.py": "def test_y(): pass\n",
    },
    "setup_cfg_only": {
        "setup.cfg": """
            [metadata]
            name = x
            [tool:pytest]
            python_files = t_*.py
        """,
        "t_a.py": "def test_a(): pass\n",
    },
    "default_norecursedirs_and_venv": {
        "test_root.py": "def test_root(): pass\n",
        "build/test_b.py": "def test_b(): pass\n",
        "dist/test_d.py": "def test_d(): pass\n",
        ".hidden/test_h.py": "def test_h(): pass\n",
        "x.egg/test_e.py": "def test_e(): pass\n",
        "node_modules/test_n.py": "def test_n(): pass\n",
        "env/pyvenv.cfg": "home = /usr\n",
        "env/test_venv.py": "def test_venv(): pass\n",
        "pkg/__pycache__/test_c.py": "def test_c(): pass\n",
        "pkg/test_ok.py": "def test_ok(): pass\n",
        "a_test.py": "def test_suffix(): pass\n",
    },
    "addopts_ignore_and_glob": {
        "pytest.ini": """
            [pytest]
            addopts = --ignore=tests/test_skip.py --ignore-glob=*/legacy/* -p no:cacheprovider
        """,
        "tests/test_keep.py": "def test_keep(): pass\n",
        "tests/test_skip.py": "def test_skip(): pass\n",
        "tests/legacy/test_old.py": "def test_old(): pass\n",
    },
    "addopts_keyword_and_mark_deselect": {
        "pytest.ini": """
            [pytest]
            addopts = -m "not stress" -k "not slow_thing"
            markers =
                stress: long
        """,
        "test_sel.py": """
            import pytest
            @pytest.mark.stress
            @pytest.mark.parametrize("i", range(5))
            def test_stress(i): pass
            def test_fast(): pass
            def test_slow_thing(): pass
            class TestGroup:
                pytestmark = pytest.mark.stress
                def test_in_group(self): pass
        """,
    },
    "addopts_keyword_matches_class_and_module_names": {
        "pytest.ini": """
            [pytest]
            addopts = -k "Alpha or test_beta.py or (unit and not skipit)"
        """,
        "unit/test_x.py": "def test_one(): pass\ndef test_skipit(): pass\n",
        "test_beta.py": "def test_b(): pass\n",
        "test_gamma.py": "class TestAlpha:\n    def test_a(self): pass\ndef test_g(): pass\n",
    },
    "addopts_deselect": {
        "pytest.ini": """
            [pytest]
            addopts = --deselect test_d.py::test_gone --deselect=test_d.py::TestK
        """,
        "test_d.py": "def test_gone(): pass\ndef test_stay(): pass\nclass TestK:\n    def test_k(self): pass\n",
    },
    "conftest_collect_ignore": {
        "conftest.py": """
            collect_ignore = ["test_ignored.py", "skipdir"]
            collect_ignore_glob = ["*_gen.py"]
        """,
        "test_kept.py": "def test_kept(): pass\n",
        "test_ignored.py": "def test_ignored(): pass\n",
        "skipdir/test_s.py": "def test_s(): pass\n",
        "test_x_gen.py": "def test_gen(): pass\n",
        "sub/conftest.py": "collect_ignore = ['test_local.py']\n",
        "sub/test_local.py": "def test_local(): pass\n",
        "sub/test_other.py": "def test_other(): pass\n",
    },
    "packages_and_ordering": {
        "tests/__init__.py": "",
        "tests/test_b.py": "def test_b(): pass\n",
        "tests/a/__init__.py": "",
        "tests/a/test_z.py": "def test_z(): pass\n",
        "tests/test_a.py": "def test_a(): pass\n",
        "tests/c/test_c.py": "def test_c(): pass\n",
    },
    "rootdir_from_parent_config": {
        "setup.cfg": "[tool:pytest]\ntestpaths = proj/tests\n",
        "proj/tests/test_deep.py": "def test_deep(): pass\n",
    },
    "encodings_bom_crlf_cookie": {
        "test_bom.py": b"\xef\xbb\xbfdef test_bom(): pass\n",
        "test_crlf.py": b"def test_crlf():\r\n    pass\r\n\r\ndef test_crlf2(): pass\r\n",
        "test_latin.py": b"# -*- coding: latin-1 -*-\ndef test_latin():\n    s = '\xe9'\n",
        "test_unicode_name.py": "def test_ünïcode(): pass\n",
    },
}

ARGS: dict[str, list[str]] = {}


@pytest.mark.parametrize("case", sorted(CASES))
def test_index_matches_pytest(case: str, tmp_path: Path) -> None:
    write_tree(tmp_path, CASES[case])
    args = ARGS.get(case, [])
    expected, output = pytest_collect(tmp_path, args)
    index = WorkspaceIndex(tmp_path, args, use_cache=False)
    index.build()
    got = [i.nodeid for i in index.items(include_deselected=False)]
    assert got == expected, f"pytest said:\n{output}"
    assert not [e for e in index.errors() if e.kind != "not-a-file"], index.errors()


@pytest.mark.parametrize(
    ("case", "args"),
    [
        ("explicit_file_outside_patterns", ["helper_check.py"]),
        ("explicit_node_id", ["test_n.py::TestA::test_x"]),
        ("explicit_function_all_params", ["test_n.py::test_p"]),
        ("explicit_subdir", ["sub"]),
    ],
)
def test_index_matches_pytest_with_args(case: str, args: list[str], tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "helper_check.py": "def test_h(): pass\n",
            "test_n.py": "import pytest\nclass TestA:\n    def test_x(self): pass\n    def test_y(self): pass\n"
            "@pytest.mark.parametrize('i', [1, 2])\ndef test_p(i): pass\ndef test_pp(): pass\n",
            "sub/test_s.py": "def test_s(): pass\n",
        },
    )
    expected, output = pytest_collect(tmp_path, args)
    index = WorkspaceIndex(tmp_path, args, use_cache=False)
    index.build()
    assert [i.nodeid for i in index.items(include_deselected=False)] == expected, output


def test_subdir_invocation_uses_parent_rootdir(tmp_path: Path) -> None:
    """Invoked from a subfolder, node ids stay relative to the rootdir (the config's folder)."""
    write_tree(tmp_path, {"pytest.ini": "[pytest]\n", "tests/unit/test_u.py": "def test_u(): pass\n"})
    expected, output = pytest_collect(tmp_path / "tests")
    index = WorkspaceIndex(tmp_path / "tests", [], use_cache=False)
    index.build()
    assert index.root == tmp_path
    assert [i.nodeid for i in index.items()] == expected == ["tests/unit/test_u.py::test_u"], output


def test_environment_dependent_definitions_are_offered_and_flagged(tmp_path: Path) -> None:
    """A test defined under `if HAVE_X:` (set in an except handler) depends on what is installed.

    The index offers both branches, flagged dynamic, so real collection decides;
    it must never drop the one pytest collects.
    """
    write_tree(
        tmp_path,
        {
            "test_cond.py": """
                try:
                    import no_such_module_here
                    HAVE = True
                except ImportError:
                    HAVE = False
                if not HAVE:
                    def test_without(): pass
                else:
                    def test_with(): pass
            """,
        },
    )
    expected, _ = pytest_collect(tmp_path)
    index = WorkspaceIndex(tmp_path, use_cache=False)
    index.build()
    items = {i.nodeid: i for i in index.items()}
    assert set(expected) <= set(items)
    assert all(i.dynamic for i in items.values())
