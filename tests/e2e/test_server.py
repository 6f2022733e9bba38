"""The language server end to end: a real client over stdio, a real engine, a fixture project.

Every wait is for a notification or a condition, bounded; nothing sleeps.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tach_ls import protocol
from tests.e2e.harness import Session, copy_project, start, stop

pytestmark = pytest.mark.e2e


def get(obj: Any, key: str) -> Any:
    return obj[key] if isinstance(obj, dict) else getattr(obj, key)


@pytest_asyncio.fixture
async def session(tmp_path: Path) -> AsyncIterator[Session]:
    root = copy_project("lsp_basic", tmp_path)
    s = await start(root, {"workers": 2}, tmp_home=tmp_path / "home")
    yield s
    await stop(s)


async def test_tree_arrives_before_any_run(session: Session) -> None:
    tree = await session.wait_for(protocol.TESTS_CHANGED, lambda p: get(p, "uri").endswith("tests/test_calc.py"))
    ids = [get(n, "id") for n in get(tree, "tests")]
    assert "tests/test_calc.py::test_add" in ids
    assert "tests/test_calc.py::test_div[1-1-1]" in ids
    assert "tests/test_calc.py::TestDiv::test_by_zero" in ids
    add = next(n for n in get(tree, "tests") if get(n, "id") == "tests/test_calc.py::test_add")
    assert get(add, "selection_line") == 5  # 0-based `def` line


async def test_lenses_run_and_follow_edits(session: Session) -> None:
    await session.wait_for(protocol.TESTS_CHANGED, lambda p: get(p, "uri").endswith("test_calc.py"))
    text = (session.root / "tests/test_calc.py").read_text()
    session.open("tests/test_calc.py", text)
    lenses = await session.lenses("tests/test_calc.py")
    assert (5, "Run") in lenses and (5, "Debug") in lenses
    assert (0, "Run file") in lenses
    session.change("tests/test_calc.py", "\n\n" + text, 2)  # two lines above everything, unsaved
    await session.wait_for(protocol.TESTS_CHANGED, lambda p: get(p, "version") == 2)
    assert (7, "Run") in await session.lenses("tests/test_calc.py")


async def test_run_one_test_streams_result_and_updates_lens(session: Session) -> None:
    result = await session.command(protocol.CMD_RUN_TESTS, {"tests": ["tests/test_calc.py::test_add"]})
    assert get(result, "passed") == 1 and get(result, "failed") == 0
    [row] = get(result, "results")
    assert get(row, "nodeid") == "tests/test_calc.py::test_add" and get(row, "status") == "passed"
    await session.wait_for(protocol.TEST_RESULT, lambda p: get(p, "nodeid") == "tests/test_calc.py::test_add")
    await session.wait_for(protocol.RUN_FINISHED)
    session.open("tests/test_calc.py")
    titles = [t for line, t in await session.lenses("tests/test_calc.py") if line == 5]
    assert any(t.startswith("passed") for t in titles), titles


async def test_failure_is_a_diagnostic_at_the_assertion_and_moves_with_edits(session: Session) -> None:
    text = (session.root / "tests/test_calc.py").read_text()
    session.open("tests/test_calc.py", text)
    result = await session.command(protocol.CMD_RUN_TESTS, {"tests": ["tests/test_calc.py::test_add_wrong"]})
    assert get(result, "failed") == 1
    await session.wait_until(lambda: bool(session.diagnostics("tests/test_calc.py")))
    [diag] = session.diagnostics("tests/test_calc.py")
    assert diag.range.start.line == 11  # `assert result == 5`, 0-based
    assert "assert 4 == 5" in diag.message
    session.change("tests/test_calc.py", "# one\n# two\n# three\n" + text, 2)
    await session.wait_until(lambda: any(d.range.start.line == 14 for d in session.diagnostics("tests/test_calc.py")))


async def test_run_file_by_uri(session: Session) -> None:
    result = await session.command(protocol.CMD_RUN_TESTS, {"uri": session.uri("tests/test_calc.py")})
    assert (get(result, "passed"), get(result, "failed")) == (4, 1)


async def test_run_on_save_runs_the_saved_file(tmp_path: Path) -> None:
    root = copy_project("lsp_basic", tmp_path)
    s = await start(root, {"runOnSave": "file"}, tmp_home=tmp_path / "home")
    try:
        await s.wait_for(protocol.TESTS_CHANGED, lambda p: get(p, "uri").endswith("test_calc.py"))
        text = (root / "tests/test_calc.py").read_text().replace("assert result == 5", "assert result == 4")
        s.open("tests/test_calc.py")
        s.save("tests/test_calc.py", text, 2)
        started = await s.wait_for(protocol.RUN_STARTED)
        assert get(started, "reason") == "save"
        finished = await s.wait_for(protocol.RUN_FINISHED)
        assert (get(finished, "passed"), get(finished, "failed")) == (5, 0)
    finally:
        await stop(s)


async def test_cancel_stops_a_running_test(session: Session) -> None:
    import asyncio

    run = asyncio.ensure_future(session.command(protocol.CMD_RUN_TESTS, {"tests": ["tests/test_slow.py"]}))
    started = await session.wait_for(protocol.RUN_STARTED)
    cancelled = await session.command(protocol.CMD_CANCEL, {"run_id": get(started, "run_id")})
    assert get(cancelled, "cancelled") == [get(started, "run_id")]
    result = await asyncio.wait_for(run, 30)
    assert get(result, "cancelled") is True
    after = await session.command(protocol.CMD_RUN_TESTS, {"tests": ["tests/test_calc.py::test_add"]})
    assert get(after, "passed") == 1, "the next run works"


async def test_bad_command_arguments_are_errors_and_the_server_goes_on(session: Session) -> None:
    from pygls.exceptions import JsonRpcException

    for bad in ([], ["not an object"], [{"tests": "not a list"}], [{"tests": []}], [{"uri": 42}]):
        with pytest.raises(JsonRpcException):
            await session.command(protocol.CMD_RUN_TESTS, *bad)
    result = await session.command(protocol.CMD_RUN_TESTS, {"tests": ["tests/test_calc.py::test_add"]})
    assert get(result, "passed") == 1


def descendants(pid: int) -> list[int]:
    """All processes below `pid` (from /proc), for leak and kill tests."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out: list[int] = []
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            out.append(child)
            stack.append(child)
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


async def test_hover_shows_last_result(session: Session) -> None:
    from lsprotocol import types

    await session.command(protocol.CMD_RUN_TESTS, {"tests": ["tests/test_calc.py::test_add_wrong"]})
    session.open("tests/test_calc.py")
    hover = await session.client.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(session.uri("tests/test_calc.py")), types.Position(10, 4))
    )
    assert hover is not None and "test_add_wrong**: failed" in hover.contents.value


async def test_files_changed_outside_the_editor(session: Session) -> None:
    await session.wait_for(protocol.TESTS_CHANGED, lambda p: get(p, "uri").endswith("test_calc.py"))
    await session.command(protocol.CMD_RUN_TESTS, {"tests": ["tests/test_calc.py::test_add_wrong"]})
    await session.wait_until(lambda: bool(session.diagnostics("tests/test_calc.py")))
    (session.root / "tests" / "test_new.py").write_text("def test_fresh():\n    pass\n")
    tree = await session.wait_for(protocol.TESTS_CHANGED, lambda p: get(p, "uri").endswith("test_new.py"))
    assert [get(n, "id") for n in get(tree, "tests")][-1] == "tests/test_new.py::test_fresh"
    (session.root / "tests" / "test_calc.py").unlink()
    await session.wait_for(protocol.TESTS_CHANGED, lambda p: get(p, "uri").endswith("test_calc.py") and not get(p, "tests"))
    await session.wait_until(lambda: not session.diagnostics("tests/test_calc.py"))


async def test_cancel_request_stops_the_run(session: Session) -> None:
    import asyncio

    from lsprotocol import types

    params = types.ExecuteCommandParams(command=protocol.CMD_RUN_TESTS, arguments=[{"tests": ["tests/test_slow.py"]}])
    request = asyncio.ensure_future(session.client.protocol.send_request_async(types.WORKSPACE_EXECUTE_COMMAND, params, msg_id="run-to-cancel"))
    await session.wait_for(protocol.RUN_STARTED)
    session.client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="run-to-cancel"))
    finished = await session.wait_for(protocol.RUN_FINISHED)
    assert get(finished, "cancelled") is True
    with pytest.raises(Exception):
        await asyncio.wait_for(request, 30)  # answered as cancelled (an error response)
    after = await session.command(protocol.CMD_RUN_TESTS, {"tests": ["tests/test_calc.py::test_add"]})
    assert get(after, "passed") == 1


async def test_zygote_killed_mid_run_reports_and_recovers(tmp_path: Path) -> None:
    import asyncio
    import os
    import signal

    marker = tmp_path / "slow-test-running"
    root = copy_project("lsp_basic", tmp_path)
    session = await start(root, {"isolation": "off"}, tmp_home=tmp_path / "home", env_extra={"TACH_E2E_MARKER": str(marker)})
    try:
        await session.wait_for(protocol.STATUS, lambda p: get(p, "state") == "ready")
        server_pid = session.client._server.pid  # type: ignore[union-attr]
        run = asyncio.ensure_future(session.command(protocol.CMD_RUN_TESTS, {"tests": ["tests/test_slow.py"]}))
        await session.poll_until(marker.exists)  # the test is running in its worker
        for pid in descendants(server_pid):
            if "zygote.py" in cmdline(pid):
                os.kill(pid, signal.SIGKILL)
        result = await asyncio.wait_for(run, 60)
        assert get(result, "passed") == 0
        [row] = get(result, "results")
        assert get(row, "status") in ("error", "crashed") and "zygote" in get(row, "message")
        after = await session.command(protocol.CMD_RUN_TESTS, {"tests": ["tests/test_calc.py::test_add"]})
        assert get(after, "passed") == 1, "the engine restarted and the next run works"
    finally:
        await stop(session)


@pytest.mark.parametrize("client_spec", ["visual-studio-code", "neovim"])
async def test_shutdown_leaves_no_process_behind(tmp_path: Path, client_spec: str) -> None:
    root = copy_project("lsp_basic", tmp_path)
    s = await start(root, {}, client=client_spec, tmp_home=tmp_path / "home")
    await s.wait_for(protocol.STATUS, lambda p: get(p, "state") == "ready")
    result = await s.command(protocol.CMD_RUN_TESTS, {"tests": ["tests/test_calc.py::test_add"]})
    assert get(result, "passed") == 1
    server_pid = s.client._server.pid  # type: ignore[union-attr]
    assert descendants(server_pid), "the zygote runs under the server"
    await stop(s)
    assert descendants(server_pid) == []
    assert not Path(f"/proc/{server_pid}").exists() or "zombie" in Path(f"/proc/{server_pid}/status").read_text().lower()


async def test_multi_root_folders_have_their_own_index_and_engine(tmp_path: Path) -> None:
    first = copy_project("lsp_basic", tmp_path / "a")
    second = copy_project("nvim_basic", tmp_path / "b")
    s = await start(first, {}, tmp_home=tmp_path / "home", extra_folders=[second])
    try:
        await s.wait_for(protocol.TESTS_CHANGED, lambda p: "/a/lsp_basic/" in get(p, "uri"))
        await s.wait_for(protocol.TESTS_CHANGED, lambda p: "/b/nvim_basic/" in get(p, "uri"))
        ready = lambda folder: (lambda p: get(p, "state") == "ready" and get(p, "folder").endswith(folder))  # noqa: E731
        await s.wait_for(protocol.STATUS, ready("/a/lsp_basic"))
        await s.wait_for(protocol.STATUS, ready("/b/nvim_basic"))
        a = await s.command(protocol.CMD_RUN_TESTS, {"tests": ["tests/test_calc.py::test_add"]})
        b = await s.command(protocol.CMD_RUN_TESTS, {"uri": (second / "tests" / "test_shapes.py").as_uri()})
        assert get(a, "passed") == 1
        assert get(b, "total") > 0 and all(str(get(r, "uri")).startswith(second.as_uri()) for r in get(b, "results"))
    finally:
        await stop(s)


async def test_import_error_is_a_diagnostic_at_its_line(tmp_path: Path) -> None:
    root = copy_project("lsp_broken", tmp_path)
    s = await start(root, {}, tmp_home=tmp_path / "home")
    try:
        await s.wait_for(protocol.STATUS, lambda p: get(p, "state") == "ready")
        await s.wait_until(lambda: bool(s.diagnostics("tests/test_imports.py")))
        [diag] = s.diagnostics("tests/test_imports.py")
        assert diag.range.start.line == 2 and "no_such_module_anywhere" in diag.message
        result = await s.command(protocol.CMD_RUN_TESTS, {"tests": ["tests/test_fine.py::test_fine"]})
        assert get(result, "passed") == 1, "the other file still runs"
    finally:
        await stop(s)


async def test_debug_test_answers_where_to_attach_and_the_result_streams(session: Session) -> None:
    """tach.debugTest answers once the worker listens; a DAP client attaching (initialize, attach,
    configurationDone) lets the test run, and its result streams as a run with reason "debug"."""
    import asyncio

    from tests.dap import DapClient

    nodeid = "tests/test_calc.py::test_add"
    answer = await session.command(protocol.CMD_DEBUG_TEST, {"test": nodeid})
    assert get(answer, "nodeid") == nodeid and isinstance(get(answer, "port"), int)
    started = await session.wait_for(protocol.RUN_STARTED, lambda p: get(p, "reason") == "debug")
    assert get(started, "tests") == [nodeid]

    def attach() -> DapClient:
        client = DapClient(get(answer, "host"), get(answer, "port"))
        client.attach()
        return client

    client = await asyncio.to_thread(attach)
    try:
        result = await session.wait_for(protocol.TEST_RESULT, lambda p: get(p, "nodeid") == nodeid)
        assert get(result, "status") == "passed" and get(result, "run_id") == get(started, "run_id")
        await session.wait_for(protocol.RUN_FINISHED, lambda p: get(p, "run_id") == get(started, "run_id"))
        await asyncio.to_thread(client.disconnect_after_exit)
    finally:
        client.close()
    after = await session.command(protocol.CMD_RUN_TESTS, {"tests": [nodeid]})
    assert get(after, "passed") == 1, "the next run works"


async def test_debug_test_errors_say_why_and_the_server_goes_on(tmp_path: Path) -> None:
    """An unknown test id and a project interpreter without debugpy are error responses with a clear message."""
    import sys

    from pygls.exceptions import JsonRpcException

    from tests.dap import venv_without_debugpy

    python = venv_without_debugpy(sys.executable, tmp_path / "venv")
    root = copy_project("lsp_basic", tmp_path)
    s = await start(root, {"python": str(python)}, tmp_home=tmp_path / "home")
    try:
        with pytest.raises(JsonRpcException, match=r"not found: tests/test_calc.py::test_nope"):
            await s.command(protocol.CMD_DEBUG_TEST, {"test": "tests/test_calc.py::test_nope"})
        with pytest.raises(JsonRpcException, match=r"debugpy is not installed in the project's interpreter .*pip install debugpy"):
            await s.command(protocol.CMD_DEBUG_TEST, {"test": "tests/test_calc.py::test_add"})
        result = await s.wait_for(protocol.TEST_RESULT, lambda p: get(p, "nodeid") == "tests/test_calc.py::test_add")
        assert get(result, "status") == "error" and "debugpy is not installed" in get(result, "message")
        after = await s.command(protocol.CMD_RUN_TESTS, {"tests": ["tests/test_calc.py::test_add"]})
        assert get(after, "passed") == 1, "the server goes on"
    finally:
        await stop(s)


@pytest.mark.parametrize("client", ["visual-studio-code", "neovim"])
async def test_positions_are_utf16_whatever_the_client_prefers(tmp_path: Path, client: str) -> None:
    """Neovim offers utf-8 first; pygls took it while every column tach-ls sends is in UTF-16 units,
    so ranges on lines with non-ASCII text ended short. The answer is utf-16, which every client speaks."""
    root = tmp_path / "proj"
    root.mkdir()
    (root / "test_uni.py").write_text('def test_caf\u00e9():\n    assert "\U0001f600" == "\U0001f600"\n')
    s = await start(root, {}, client=client, tmp_home=tmp_path / "home")
    try:
        assert get(get(s.initialize_result, "capabilities"), "position_encoding") == "utf-16"
        tree = await s.wait_for(protocol.TESTS_CHANGED, lambda p: get(p, "uri").endswith("test_uni.py"))
        node = next(n for n in get(tree, "tests") if get(n, "id") == "test_uni.py::test_caf\u00e9")
        end = get(get(node, "range"), "end")
        line = '    assert "\U0001f600" == "\U0001f600"'
        assert (get(end, "line"), get(end, "character")) == (1, len(line.encode("utf-16-le")) // 2)
    finally:
        await stop(s)
