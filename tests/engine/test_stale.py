"""Never run a test against stale code: each layer is rebuilt when what it loaded changes."""

from __future__ import annotations

import json

import pytest

from tach_ls.engine.results import Status
from tach_ls.engine.supervisor import EngineState

from .conftest import Engine, EngineFactory, statuses, wait_for

pytestmark = pytest.mark.engine

HELPER_TEST = "tests/test_basic.py::test_helper"


def base_pid(eng: Engine) -> int:
    base = eng.sup._layers.base
    assert base is not None
    return base.pid


def test_edited_workspace_module_is_seen_by_the_next_run(engine: EngineFactory, project) -> None:
    """The regression: a warm zygote keeps running the old helper after the user saved a new one."""
    root = project("engine_basic")
    eng = engine(root)
    assert eng.result(HELPER_TEST).status is Status.PASSED
    before = (eng.sup._layers.generation, base_pid(eng))
    (root / "pkg" / "helper.py").write_text("def answer() -> int:\n    return 4300\n")
    result = eng.result(HELPER_TEST)
    assert result.status is Status.FAILED and "4300" in result.longrepr
    assert eng.sup._layers.generation == before[0] + 1, "the collected layer was re-forked"
    assert base_pid(eng) == before[1], "the base layer was kept"


def test_edited_test_file_is_recollected(engine: EngineFactory, project) -> None:
    root = project("engine_basic")
    eng = engine(root)
    eng.ready()
    test_file = root / "tests" / "test_basic.py"
    test_file.write_text(test_file.read_text() + "\n\ndef test_added_later():\n    assert False, 'new'\n")
    result = eng.result("tests/test_basic.py::test_added_later")
    assert result.status is Status.FAILED and "new" in result.message


def test_new_test_file_is_collected(engine: EngineFactory, project) -> None:
    root = project("engine_basic")
    eng = engine(root)
    eng.ready()
    (root / "tests" / "test_new.py").write_text("def test_fresh():\n    pass\n")
    assert statuses(eng.run("tests/test_new.py")) == {"tests/test_new.py::test_fresh": Status.PASSED}


def test_conftest_change_rebuilds_the_base(engine: EngineFactory, project) -> None:
    root = project("engine_basic")
    eng = engine(root)
    assert eng.result("tests/test_basic.py::test_pass").status is Status.PASSED
    first_base = base_pid(eng)
    conftest = root / "tests" / "conftest.py"
    conftest.write_text(conftest.read_text().replace('yield "tok"', 'yield "changed"'))
    result = eng.result("tests/test_basic.py::test_pass")
    assert result.status is Status.FAILED and "changed-test" in result.longrepr
    assert base_pid(eng) != first_base


def test_notify_changed_rebuilds_ahead_of_the_next_run(engine: EngineFactory, project) -> None:
    root = project("engine_basic")
    eng = engine(root)
    eng.ready()
    generation = eng.sup._layers.generation
    (root / "pkg" / "helper.py").write_text("def answer() -> int:\n    return 42  # same answer, new file\n")
    eng.sup.notify_changed([root / "pkg" / "helper.py"])
    wait_for(
        lambda: eng.sup._layers.generation > generation and eng.sup.status.state == EngineState.READY,
        "the collected layer to be rebuilt without a run",
    )
    assert eng.result(HELPER_TEST).status is Status.PASSED


def test_preload_list_is_learned_and_reused(engine: EngineFactory, project) -> None:
    root = project("engine_basic")
    eng = engine(root)
    eng.ready()
    cache = root / ".tach-ls" / "zygote-preload.json"
    data = json.loads(cache.read_text())
    assert "_pytest.unittest" in data["modules"]
    assert not any(m == "pkg" or m.startswith(("pkg.", "conftest", "test_basic")) for m in data["modules"])
    eng.sup.shutdown()
    again = engine(root)
    assert again.result(HELPER_TEST).status is Status.PASSED
    collecting = next(s.detail for s in again.states if s.layer == "collected")
    preloaded = int(collecting.split(" modules preloaded")[0].rsplit(" ", 1)[1])
    assert preloaded > 0, collecting


def test_non_code_files_do_not_rebuild(engine: EngineFactory, project) -> None:
    """Two arms with the test above: a swap file or a log is not a code change (no needless re-collect)."""
    root = project("engine_basic")
    eng = engine(root)
    assert eng.result(HELPER_TEST).status is Status.PASSED
    generation = eng.sup._layers.generation
    (root / "tests" / ".test_basic.py.swp").write_text("x")
    (root / "notes.txt").write_text("x")
    (root / ".cache-dir").mkdir()
    assert eng.result(HELPER_TEST).status is Status.PASSED
    assert eng.sup._layers.generation == generation
