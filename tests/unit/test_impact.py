"""Impact selection rules, each pinned; a miss here would hide a failure, an excess costs time.

Records are written as a run would (per-test executed lines, opened files,
endpoints); then files change and `select` must name exactly the tests
that can be affected, with a reason.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tach_ls.impact import ImpactStore, NetworkPolicy, TestRecord
from tests.parity import write_tree

LIB = '''"""Library."""
RATE = 2


def double(x, factor=2):
    """Doubles."""
    return x * factor


def triple(x):
    return x * 3


class Box:
    size = 10

    def area(self):
        return self.size * self.size
'''

ALL = ["tests/test_lib.py::test_double", "tests/test_lib.py::test_triple", "tests/test_lib.py::test_area", "tests/test_data.py::test_reads"]


@pytest.fixture
def store(tmp_path: Path) -> ImpactStore:
    write_tree(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/lib.py": LIB,
            "pkg/user.py": "from pkg.lib import RATE\n\ndef scaled(x):\n    return x * RATE\n",
            "data/table.csv": "a,b\n",
        },
    )
    (tmp_path / "pkg" / "lib.py").write_text(LIB)
    s = ImpactStore(tmp_path / ".tach-ls" / "impact.sqlite3")
    s.record(
        tmp_path,
        [
            TestRecord("tests/test_lib.py::test_double", "passed", lines={"pkg/lib.py": {7}}),
            TestRecord("tests/test_lib.py::test_triple", "passed", lines={"pkg/lib.py": {11}}),
            TestRecord("tests/test_lib.py::test_area", "passed", lines={"pkg/lib.py": {18}}),
            TestRecord("tests/test_data.py::test_reads", "passed", lines={"pkg/user.py": {4}}, opened={"data/table.csv"}, endpoints={"127.0.0.1:8080"}),
        ],
        env_key="env-1",
    )
    return s


def select(store: ImpactStore, root: Path, changed: list[str] | None = None, **kw: object) -> dict[str, str]:
    changed = store.changed_files(root) if changed is None else changed
    return {s.nodeid: s.reason for s in store.select(root, changed, kw.pop("tests", ALL), kw.pop("env", "env-1"), **kw)}  # type: ignore[arg-type]


def edit(root: Path, old: str, new: str) -> None:
    path = root / "pkg" / "lib.py"
    path.write_text(path.read_text().replace(old, new))


def test_nothing_changed_selects_nothing(store: ImpactStore, tmp_path: Path) -> None:
    assert select(store, tmp_path) == {}


def test_changed_function_body_selects_only_its_users(store: ImpactStore, tmp_path: Path) -> None:
    edit(tmp_path, "return x * 3", "return x * 4")
    assert select(store, tmp_path) == {"tests/test_lib.py::test_triple": "executed pkg/lib.py::triple, which changed"}


def test_comment_and_docstring_and_formatting_changes_select_nothing(store: ImpactStore, tmp_path: Path) -> None:
    edit(tmp_path, '    """Doubles."""', '    """Doubles its input, documented better."""')
    edit(tmp_path, "return x * 3", "return x  *  3  # same code, new comment")
    assert select(store, tmp_path) == {}


def test_changed_default_argument_selects_callers(store: ImpactStore, tmp_path: Path) -> None:
    edit(tmp_path, "factor=2", "factor=3")
    assert list(select(store, tmp_path)) == ["tests/test_lib.py::test_double"]


def test_changed_class_attribute_read_by_a_method(store: ImpactStore, tmp_path: Path) -> None:
    """The class body runs at import, not in the test: attribution is conservative."""
    edit(tmp_path, "size = 10", "size = 11")
    selected = select(store, tmp_path)
    assert "tests/test_lib.py::test_area" in selected
    assert "class Box body changed" in selected["tests/test_lib.py::test_area"]


def test_module_constant_used_elsewhere_selects_importers(store: ImpactStore, tmp_path: Path) -> None:
    edit(tmp_path, "RATE = 2", "RATE = 5")
    selected = select(store, tmp_path)
    assert "tests/test_data.py::test_reads" in selected, "pkg/user.py imports RATE from pkg/lib.py"
    assert set(ALL) <= set(selected)


def test_changed_data_file_selects_its_readers(store: ImpactStore, tmp_path: Path) -> None:
    (tmp_path / "data" / "table.csv").write_text("a,b\n1,2\n")
    assert select(store, tmp_path, changed=["data/table.csv"]) == {"tests/test_data.py::test_reads": "read data/table.csv, which changed"}


def test_deleted_module_selects_users_and_importers(store: ImpactStore, tmp_path: Path) -> None:
    (tmp_path / "pkg" / "lib.py").unlink()
    selected = select(store, tmp_path)
    assert set(selected) == set(ALL)
    assert "deleted" in selected["tests/test_lib.py::test_triple"]


def test_helper_moved_to_another_file(store: ImpactStore, tmp_path: Path) -> None:
    edit(tmp_path, "def triple(x):\n    return x * 3\n", "from pkg.more import triple\n")
    (tmp_path / "pkg" / "more.py").write_text("def triple(x):\n    return x * 3\n")
    selected = select(store, tmp_path)
    assert "tests/test_lib.py::test_triple" in selected


def test_new_renamed_and_failed_tests(store: ImpactStore, tmp_path: Path) -> None:
    store.record(tmp_path, [TestRecord("tests/test_lib.py::test_area", "failed", lines={"pkg/lib.py": {18}})], env_key="env-1")
    tests = [*ALL[:2], "tests/test_lib.py::test_area", "tests/test_lib.py::test_double_renamed"]
    selected = select(store, tmp_path, tests=tests)
    assert selected == {
        "tests/test_lib.py::test_double_renamed": "new test (no record yet)",
        "tests/test_lib.py::test_area": "failed last time",
    }


def test_environment_change_selects_everything(store: ImpactStore, tmp_path: Path) -> None:
    assert set(select(store, tmp_path, env="env-2")) == set(ALL)


def test_incomplete_coverage_is_never_trusted(store: ImpactStore, tmp_path: Path) -> None:
    store.record(tmp_path, [TestRecord("tests/test_lib.py::test_triple", "passed", lines={}, complete=False)], env_key="env-1")
    assert "tests/test_lib.py::test_triple" in select(store, tmp_path)


def test_network_policy(store: ImpactStore, tmp_path: Path) -> None:
    always = NetworkPolicy({"127.0.0.1:*": "always"})
    assert "tests/test_data.py::test_reads" in select(store, tmp_path, changed=[], policy=always)
    when = NetworkPolicy({"127.0.0.1:*": {"when": "api/*.json"}})
    assert select(store, tmp_path, changed=[], policy=when) == {}
    assert "tests/test_data.py::test_reads" in select(store, tmp_path, changed=["api/v1.json"], policy=when)
    ignore = NetworkPolicy({"127.0.0.1:*": "ignore"})
    assert select(store, tmp_path, changed=["api/v1.json"], policy=ignore) == {}


def test_unsaved_editor_text_is_used_instead_of_the_disk(store: ImpactStore, tmp_path: Path) -> None:
    text = LIB.replace("return x * 3", "return x * 9").encode()
    assert list(select(store, tmp_path, changed=["pkg/lib.py"], texts={"pkg/lib.py": text})) == ["tests/test_lib.py::test_triple"]


def test_two_stores_on_one_file_and_a_crash_mid_write(store: ImpactStore, tmp_path: Path) -> None:
    """Editor and terminal share the database; a failed write leaves the previous records."""
    other = ImpactStore(tmp_path / ".tach-ls" / "impact.sqlite3")
    assert set(other.known_tests()) == set(ALL)

    class Boom(Exception):
        pass

    class Exploding(TestRecord):
        @property  # type: ignore[override]
        def endpoints(self) -> set[str]:
            raise Boom()

        @endpoints.setter
        def endpoints(self, value: set[str]) -> None:
            pass

    with pytest.raises(Boom):
        other.record(tmp_path, [TestRecord("tests/x.py::test_new", "passed"), Exploding("tests/x.py::test_bad", "passed")], env_key="env-1")
    assert set(store.known_tests()) == set(ALL), "the partial write was rolled back"


def test_guessed_parameter_ids_run_as_their_whole_function() -> None:
    """Regression: a case whose static id differs from real collection's was never run (a hidden failure)."""
    from types import SimpleNamespace

    from tach_ls.impact import Selected
    from tach_ls.impact_session import runnable_ids

    items = {
        "t.py::test_f[data7]": SimpleNamespace(dynamic=True, params_id="data7"),
        "t.py::test_g[1]": SimpleNamespace(dynamic=False, params_id="1"),
    }
    selected = [Selected("t.py::test_f[data7]", "new"), Selected("t.py::test_g[1]", "new"), Selected("t.py::test_h", "new")]
    assert runnable_ids(selected, items) == ["t.py::test_f", "t.py::test_g[1]", "t.py::test_h"]


PROPS = '''from typing import overload


class Temp:
    @property
    def celsius(self):
        return self._c

    @celsius.setter
    def celsius(self, value):
        self._c = value


@overload
def parse(x: int) -> int: ...
@overload
def parse(x: str) -> str: ...
def parse(x):
    return x
'''


def test_a_name_defined_twice_records_and_selects_each_definition(tmp_path: Path) -> None:
    """A property and its setter (and `@overload`s) share a name: each is its own block, the run is recorded."""
    write_tree(tmp_path, {"pkg/props.py": PROPS})
    s = ImpactStore(tmp_path / "impact.sqlite3")
    getter, setter = "tests/t.py::test_get", "tests/t.py::test_set"
    s.record(tmp_path, [TestRecord(getter, "passed", lines={"pkg/props.py": {7}}), TestRecord(setter, "passed", lines={"pkg/props.py": {11}})], env_key="e")
    path = tmp_path / "pkg" / "props.py"
    path.write_text(PROPS.replace("self._c = value", "self._c = float(value)"))
    picked = {x.nodeid: x.reason for x in s.select(tmp_path, s.changed_files(tmp_path), [getter, setter], "e")}
    assert picked == {setter: "executed pkg/props.py::Temp.celsius#2, which changed"}
    path.write_text(PROPS.replace("return x\n", "return None\n"))
    assert {x.nodeid for x in s.select(tmp_path, s.changed_files(tmp_path), [getter, setter], "e")} == set()


def test_guessed_parameter_ids_are_judged_by_the_recorded_real_ids(tmp_path: Path) -> None:
    """A statically guessed case id is never recorded (the run records pytest's id): it must not count
    as a new test on every run, and the real cases recorded for its function must stay selectable."""
    from types import SimpleNamespace

    from tach_ls.impact_session import select_affected

    write_tree(tmp_path, {"pkg/lib.py": LIB})
    s = ImpactStore(tmp_path / "impact.sqlite3")
    real = ["t.py::test_f[real-7]", "t.py::test_f[0]"]
    s.record(tmp_path, [TestRecord(real[0], "passed", lines={"pkg/lib.py": {7}}), TestRecord(real[1], "passed", lines={"pkg/lib.py": {11}})], env_key="e")
    items = {"t.py::test_f[guess-7]": SimpleNamespace(dynamic=True, params_id="guess-7"), "t.py::test_f[0]": SimpleNamespace(dynamic=False, params_id="0")}
    static = list(items)
    assert select_affected(s, tmp_path, static, "e", items=items).selected == []
    edit(tmp_path, "return x * factor", "return x * factor + 1")
    picked = select_affected(s, tmp_path, static, "e", items=items)
    assert [x.nodeid for x in picked.selected] == ["t.py::test_f[real-7]"]


def test_each_test_is_judged_against_the_version_it_ran_on(tmp_path: Path) -> None:
    """A partial run records a newer version of a file; a test last run on the older one must still
    see the change between the two, or a failure hides."""
    write_tree(tmp_path, {"pkg/lib.py": LIB})
    s = ImpactStore(tmp_path / "impact.sqlite3")
    s.record(tmp_path, [TestRecord("t.py::test_double", "passed", lines={"pkg/lib.py": {7}})], env_key="e")
    edit(tmp_path, "return x * factor", "return x * factor * 2")
    s.record(tmp_path, [TestRecord("t.py::test_triple", "passed", lines={"pkg/lib.py": {11}})], env_key="e")
    picked = {x.nodeid: x.reason for x in s.select(tmp_path, s.changed_files(tmp_path), ["t.py::test_double", "t.py::test_triple"], "e")}
    assert picked == {"t.py::test_double": "executed pkg/lib.py::double, which changed"}


def test_a_change_in_a_branch_a_test_never_took_does_not_select_it(tmp_path: Path) -> None:
    source = "def sign(x):\n    if x < 0:\n        return -1\n    return 1\n"
    write_tree(tmp_path, {"pkg/sign.py": source})
    s = ImpactStore(tmp_path / "impact.sqlite3")
    s.record(tmp_path, [TestRecord("t.py::test_neg", "passed", lines={"pkg/sign.py": {2, 3}}), TestRecord("t.py::test_pos", "passed", lines={"pkg/sign.py": {2, 4}})], env_key="e")
    (tmp_path / "pkg" / "sign.py").write_text(source.replace("return -1", "return -2"))
    assert [x.nodeid for x in s.select(tmp_path, s.changed_files(tmp_path), ["t.py::test_neg", "t.py::test_pos"], "e")] == ["t.py::test_neg"]


def test_a_file_a_test_found_missing_selects_it_only_when_it_appears(tmp_path: Path) -> None:
    s = ImpactStore(tmp_path / "impact.sqlite3")
    s.record(tmp_path, [TestRecord("t.py::test_missing", "passed", opened={"conf/missing.cfg"})], env_key="e")
    assert s.changed_files(tmp_path) == []
    assert s.select(tmp_path, s.changed_files(tmp_path), ["t.py::test_missing"], "e") == []
    write_tree(tmp_path, {"conf/missing.cfg": "x = 1\n"})
    picked = s.select(tmp_path, s.changed_files(tmp_path), ["t.py::test_missing"], "e")
    assert [(x.nodeid, x.reason) for x in picked] == [("t.py::test_missing", "read conf/missing.cfg, which changed")]


def test_a_test_that_starts_processes_runs_again_on_any_change(tmp_path: Path) -> None:
    """Regression (Click's test_light_imports): code run in a subprocess is in no coverage, so a test
    that spawns is re-run whenever anything changed, and only then."""
    write_tree(tmp_path, {"pkg/lib.py": LIB})
    s = ImpactStore(tmp_path / "impact.sqlite3")
    s.record(tmp_path, [TestRecord("t.py::test_spawns", "passed", spawns=True), TestRecord("t.py::test_pure", "passed", lines={"pkg/lib.py": {11}})], env_key="e")
    assert s.select(tmp_path, s.changed_files(tmp_path), ["t.py::test_spawns", "t.py::test_pure"], "e") == []
    edit(tmp_path, "return x * factor", "return x * factor + 1")
    picked = {x.nodeid: x.reason for x in s.select(tmp_path, s.changed_files(tmp_path), ["t.py::test_spawns", "t.py::test_pure"], "e")}
    assert picked == {"t.py::test_spawns": "it starts processes, whose code tach-ls cannot see, and pkg/lib.py changed"}
