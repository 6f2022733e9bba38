"""The VS Code extension (editors/vscode) in a real VS Code.

- `test_extension_typecheck_lint_and_unit_tests`: the extension's own checks
  (tsc strict, eslint, the unit tests with `vscode` stubbed) so CI runs them;
- the rest drive code-server (VS Code 1.100.3) in headless Chromium through
  Playwright (tests/e2e/vscode/e2e.mjs): the packaged `.vsix` installed into a
  fresh profile, the lsp_basic fixture opened, and what the workbench shows
  asserted: the Test Explorer's tests, a gutter click that passes, a test broken
  and saved during a continuous run failing at its assertion line, and, when
  the server sends `tach/coverage`, coverage marks in the editor; in a second
  window, the Debug profile without the Python Debugger extension pausing at a
  breakpoint and showing the test's result; and, in a third whose server
  interpreter lacks tach-ls, one notification with the fixes.

Screenshots go to tests/e2e/artifacts/vscode/ (printed; kept by CI). The tools
come from `bash scripts/install-vscode-e2e.sh`; when they are missing these tests
fail and say so (a skip here would hide a broken CI machine).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tach_ls import protocol
from tests.e2e.harness import WAIT_S, copy_project, start, stop

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
EXTENSION = ROOT / "editors" / "vscode"
SCRIPT = Path(__file__).resolve().parent / "vscode" / "e2e.mjs"
ARTIFACTS = ROOT / "tests" / "e2e" / "artifacts" / "vscode"
FIX = "run `bash scripts/install-vscode-e2e.sh` (or `bash scripts/install.sh --test`)"
NO_COVERAGE = "the server sends no tach/coverage yet (probed with the Coverage profile's flag and the coverage setting)"
CALC_TESTS = ["test_calc.py", "test_add", "test_add_wrong", "test_div", "[1-1-1]", "[6-3-2]", "TestDiv", "test_by_zero"]
START_S = 60.0
SCENARIO_S = 300.0


def tools_dir() -> Path:
    if os.environ.get("TACH_LS_E2E_CACHE"):
        return Path(os.environ["TACH_LS_E2E_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tach-ls-e2e"


@dataclass
class Tools:
    node: str
    npm: str
    code_server: Path
    chromium: str
    tools: Path


def require_tools() -> Tools:
    """Everything the VS Code tests need, or a failure that names what is missing and the fix."""
    missing: list[str] = []
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        missing.append("node 20 and npm")
    if not (EXTENSION / "node_modules" / ".bin" / "tsc").exists():
        missing.append(f"the extension's dev dependencies ({EXTENSION / 'node_modules'})")
    tools = tools_dir()
    code_server = tools / "node_modules" / ".bin" / "code-server"
    if not code_server.exists():
        missing.append(f"code-server ({code_server})")
    if not (tools / "node_modules" / "playwright-core").is_dir():
        missing.append(f"playwright-core ({tools / 'node_modules'})")
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium") or ""
    if not chromium:
        missing.append("Debian's chromium")
    if missing:
        pytest.fail(f"VS Code e2e tools missing: {', '.join(missing)}. Fix: {FIX}", pytrace=False)
    assert node and npm
    return Tools(node, npm, code_server, chromium, tools)


@pytest.fixture(scope="module")
def tools() -> Tools:
    return require_tools()


def npm(tools: Tools, *args: str, timeout: float = 300) -> str:
    proc = subprocess.run([tools.npm, *args], cwd=EXTENSION, capture_output=True, text=True, timeout=timeout)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"npm {' '.join(args)} failed ({proc.returncode}):\n{output[-6000:]}"
    return output


def test_extension_typecheck_lint_and_unit_tests(tools: Tools) -> None:
    """tsc --strict, eslint and the unit tests (tree building, result mapping, coverage conversion)."""
    npm(tools, "run", "typecheck")
    npm(tools, "run", "lint")
    out = npm(tools, "test")
    passed = re.search(r"^ℹ pass (\d+)$", out, re.M)
    failed = re.search(r"^ℹ fail (\d+)$", out, re.M)
    assert passed and failed, out[-3000:]
    assert int(failed.group(1)) == 0 and int(passed.group(1)) > 0, out[-3000:]


@pytest.fixture(scope="module")
def vsix(tools: Tools) -> Path:
    npm(tools, "run", "package")
    path = EXTENSION / "tach-ls.vsix"
    assert path.exists()
    print(f"\n.vsix: {path} ({path.stat().st_size / 1024:.1f} KiB)")
    return path


# -- does the server send coverage yet? --------------------------------------------------------------
async def _coverage_arrives(root: Path, home: Path, setting: bool) -> bool:
    session = await start(root, {"workers": 1, "coverage": setting}, tmp_home=home)
    try:
        run = session.command(protocol.CMD_RUN_TESTS, {"tests": ["tests/test_calc.py::test_add"], "coverage": True})
        try:
            await asyncio.wait_for(run, WAIT_S)
        except asyncio.TimeoutError:
            raise AssertionError(f"the server did not finish one test within {WAIT_S:.0f} s (probing for tach/coverage)") from None
        # The command answers after the run's notifications: coverage, if any, has arrived by now.
        return bool(session.seen.get(protocol.COVERAGE))
    finally:
        await stop(session)


@pytest.fixture(scope="module")
def coverage_mode(tmp_path_factory: pytest.TempPathFactory) -> str | None:
    """'profile': the Coverage profile's per-run flag is enough; 'setting': needs tach-ls.coverage; None: no coverage."""
    for mode, setting in (("profile", False), ("setting", True)):
        tmp = tmp_path_factory.mktemp(f"probe-{mode}")
        if asyncio.run(_coverage_arrives(copy_project("lsp_basic", tmp), tmp / "home", setting)):
            return mode
    return None


# -- code-server ----------------------------------------------------------------------------------------
class CodeServer:
    """code-server on a free 127.0.0.1 port, in its own process group, with a throwaway profile."""

    def __init__(self, tools: Tools, base: Path, vsix: Path, folder: Path) -> None:
        self.log_path = base / "code-server.log"
        user, extensions = base / "user-data", base / "extensions"
        (user / "User").mkdir(parents=True)
        (user / "User" / "settings.json").write_text(
            json.dumps(
                {
                    "security.workspace.trust.enabled": False,
                    "telemetry.telemetryLevel": "off",
                    "workbench.startupEditor": "none",
                    "workbench.tips.enabled": False,
                    "extensions.autoUpdate": False,
                    "extensions.autoCheckUpdates": False,
                    "update.mode": "none",
                    "chat.disableAIFeatures": True,
                }
            )
        )
        config = base / "code-server.yaml"
        config.write_text("bind-addr: 127.0.0.1:0\nauth: none\ncert: false\n")
        common = ["--config", str(config), "--user-data-dir", str(user), "--extensions-dir", str(extensions)]
        env = dict(os.environ)
        # The extension's default server command is `python3 -m tach_ls`: make that this interpreter.
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env["XDG_CACHE_HOME"] = str(base / "cache")
        env.pop("VIRTUAL_ENV", None)
        install = subprocess.run(
            [str(tools.code_server), *common, "--install-extension", str(vsix)], capture_output=True, text=True, env=env, timeout=120
        )
        assert install.returncode == 0 and "successfully installed" in install.stdout, install.stdout + install.stderr
        self.log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [str(tools.code_server), *common, "--disable-telemetry", "--disable-update-check", "--disable-workspace-trust", str(folder)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,
        )
        self.url = self._wait_for_url()

    def _wait_for_url(self) -> str:
        found: list[str] = []
        ready = threading.Event()

        def pump() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.log.write(line)
                self.log.flush()
                match = re.search(r"HTTP server listening on (http://\S+)", line)
                if match and not found:
                    found.append(match.group(1))
                    ready.set()
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(START_S) or not found:
            self.stop()
            raise AssertionError(f"code-server did not start: see {self.log_path}:\n{self.log_path.read_text()[-3000:]}")
        return found[0]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.log.close()


@pytest.fixture(scope="module")
def artifacts() -> Path:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    print(f"\nVS Code e2e screenshots: {ARTIFACTS}")
    return ARTIFACTS


def run_scenario(tools: Tools, vsix: Path, base: Path, folder: Path, scenario: str, coverage: bool) -> dict[str, Any]:
    """One VS Code window on `folder` through e2e.mjs; what it saw, as a dict."""
    server = CodeServer(tools, base, vsix, folder)
    config, report_path = base / "e2e.json", base / "report.json"
    config.write_text(
        json.dumps(
            {
                "scenario": scenario,
                "url": server.url,
                "folder": str(folder),
                "artifacts": str(ARTIFACTS),
                "toolsDir": str(tools.tools),
                "chromium": tools.chromium,
                "coverage": coverage,
                "report": str(report_path),
            }
        )
    )
    try:
        proc = subprocess.run([tools.node, str(SCRIPT), str(config)], capture_output=True, text=True, timeout=SCENARIO_S)
    finally:
        server.stop()
    data: dict[str, Any] = json.loads(report_path.read_text()) if report_path.exists() else {"steps": {}}
    data["script_output"] = (proc.stdout + proc.stderr)[-4000:]
    data["code_server_log"] = str(server.log_path)
    (ARTIFACTS / f"report-{scenario}.json").write_text(json.dumps(data, indent=1))
    print(f"{scenario}: screenshots {', '.join(data.get('screenshots', []))}")
    return data


@pytest.fixture(scope="module")
def report(tools: Tools, vsix: Path, coverage_mode: str | None, artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The main scenario, once, in one VS Code window; each test below checks one part of what it saw."""
    base = tmp_path_factory.mktemp("vscode")
    folder = copy_project("lsp_basic", base)
    if coverage_mode == "setting":
        (folder / ".vscode").mkdir()
        (folder / ".vscode" / "settings.json").write_text(json.dumps({"tach-ls.coverage": True}))
    return run_scenario(tools, vsix, base, folder, "main", coverage_mode is not None)


def seen(report: dict[str, Any], name: str) -> dict[str, Any]:
    """One step's observations, or a failure with the script's error and where to look."""
    step: dict[str, Any] | None = report["steps"].get(name)
    if step is None or "error" in step:
        detail = (step or {}).get("error") or report.get("error") or report.get("script_output")
        pytest.fail(f"the VS Code scenario did not get through `{name}`:\n{detail}\nsee {ARTIFACTS} and {report['code_server_log']}", pytrace=False)
    return step


def test_test_explorer_shows_the_fixture_tests(report: dict[str, Any]) -> None:
    status = seen(report, "open")["status"]
    assert "ready" in status, status  # the status bar: the warm engine is up
    labels = [row["label"].split(" (")[0] for row in seen(report, "explorer")["rows"]]
    for name in CALC_TESTS:
        assert name in labels, f"{name} not in the Test Explorer: {labels}"
    assert "01-test-explorer.png" in report["screenshots"]


def test_gutter_click_runs_the_test_and_it_passes(report: dict[str, Any]) -> None:
    step = seen(report, "gutter_run")
    before = step["before"]
    # Gutter icons on every `def`/`class` line, before anything ran: test_add, test_add_wrong,
    # test_div (parametrized: run all), class TestDiv, test_by_zero.
    assert {line for line, info in before.items() if info["glyphs"]} >= {"6", "10", "16", "20", "21"}, before
    assert "passed" in step["after"]["6"]["glyphs"], step["after"]["6"]
    assert "Passed" in step["explorerRow"], step["explorerRow"]
    print(f"gutter click -> passed icon: {step['clickToPassMs']} ms (workbench round trip)")


def test_continuous_run_shows_the_broken_test_failing_at_its_assertion(report: dict[str, Any]) -> None:
    lines = seen(report, "continuous_failure")["lines"]
    assert "failed" in lines["6"]["glyphs"], lines["6"]  # `def test_add():`
    assert lines["7"]["messages"], lines["7"]  # the message sits at `assert add(1, 2) == 4`
    assert "3" in lines["7"]["messages"][0] and "4" in lines["7"]["messages"][0], lines["7"]["messages"]
    assert not lines.get("6", {}).get("messages"), "the failure is shown at the assertion, not at the def"


def test_coverage_marks_in_the_editor(coverage_mode: str | None, request: pytest.FixtureRequest) -> None:
    if coverage_mode is None:
        pytest.skip(NO_COVERAGE)
    report: dict[str, Any] = request.getfixturevalue("report")
    step = seen(report, "coverage")
    assert step["view"], "the Test Coverage view lists calc/__init__.py"
    lines = step["lines"]
    assert "hit" in lines["2"]["coverage"], lines  # `return a + b`, run by test_add
    assert "04-coverage.png" in report["screenshots"]


def test_debug_profile_without_the_python_debugger_pauses_at_a_breakpoint_and_shows_the_result(
    tools: Tools, vsix: Path, artifacts: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No ms-python.debugpy in this VS Code (only tach-ls is installed): the Debug profile attaches
    with tach-ls's own debug type, VS Code speaking DAP straight to debugpy in the test's worker.
    The regression it catches: a Debug profile that needs an extension the user does not have."""
    base = tmp_path_factory.mktemp("vscode-debug")
    folder = copy_project("lsp_basic", base)
    report = run_scenario(tools, vsix, base, folder, "debug", False)
    step = seen(report, "debug")
    assert any("stackframe" in g for g in step["paused"]["12"]["glyphs"]), step["paused"]["12"]
    assert any("test_add_wrong" in row for row in step["callStack"]), step["callStack"]
    assert "failed" in step["after"]["10"]["glyphs"], step["after"]["10"]  # `def test_add_wrong():`
    assert step["after"]["12"]["messages"] and "5" in step["after"]["12"]["messages"][0], step["after"]["12"]
    installed = sorted(p.name for p in (base / "extensions").iterdir() if p.is_dir())
    assert all(name.startswith("tach-ls.") for name in installed), f"only tach-ls is installed: {installed}"
    print(f"Debug Test at Cursor -> paused at the breakpoint: {step['pausedMs']} ms")


def test_server_that_cannot_start_gets_one_clear_notification_with_fixes(
    tools: Tools, vsix: Path, artifacts: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The server's interpreter lacks tach-ls: say so, offer the fixes, turn the status item red."""
    base = tmp_path_factory.mktemp("vscode-not-installed")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    folder = copy_project("lsp_basic", base)
    (folder / ".vscode").mkdir()
    (folder / ".vscode" / "settings.json").write_text(json.dumps({"tach-ls.serverCommand": [str(python), "-m", "tach_ls"]}))
    step = seen(run_scenario(tools, vsix, base, folder, "not-installed", False), "not_installed")
    assert step["message"].startswith(f"tach-ls could not start: tach-ls is not installed in {python}"), step
    assert {"Install tach-ls", "Set Server Command", "Show Log"} <= set(step["actions"]), step["actions"]
    assert step["toasts"] == [step["message"]], f"one notification, not the language client's generic ones: {step['toasts']}"
    assert "did not start" in step["status"], step["status"]
