"""The early answer: a second session gets `initialize` answered and the test tree before pygls loads.

Raw JSON-RPC over a real server process's stdio, so the test sees every
frame: how many answers `initialize` got, and whether the tree came before
the client had even sent `initialized`. Every read is bounded.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from tach_ls import protocol
from tach_ls.early import InitializeWatch, Replay, read_message
from tach_ls.uris import path_to_uri
from tests.e2e.harness import copy_project

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
BOUND = 30.0


def frame(message: dict[str, Any]) -> bytes:
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


class RawSession:
    def __init__(self, root: Path, cache_home: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(cache_home)}
        self.proc = subprocess.Popen([sys.executable, "-m", "tach_ls"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self.inbox: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.root = root

    def _read(self) -> None:
        assert self.proc.stdout is not None
        while True:
            _raw, message = read_message(self.proc.stdout)
            self.inbox.put(message)
            if message is None:
                return

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(frame({"jsonrpc": "2.0", **message}))
        self.proc.stdin.flush()

    def next_until(self, predicate: Any) -> dict[str, Any]:
        while True:
            message = self.inbox.get(timeout=BOUND)
            assert message is not None, f"the server closed its output; saw {self.seen}"
            self.seen.append(message)
            if predicate(message):
                return message

    def initialize(self, capabilities: dict[str, Any] | None = None) -> None:
        uri = path_to_uri(self.root)
        params = {"capabilities": capabilities or {}, "rootUri": uri, "workspaceFolders": [{"uri": uri, "name": "p"}]}
        self.send({"id": 1, "method": "initialize", "params": params})

    def close(self) -> int:
        self.send({"id": 99, "method": "shutdown"})
        self.next_until(lambda m: m.get("id") == 99)
        self.send({"method": "exit"})
        code = self.proc.wait(BOUND)
        while not self.inbox.empty():
            message = self.inbox.get()
            if message is not None:
                self.seen.append(message)
        return code


def test_a_second_session_gets_the_tree_before_it_says_initialized(tmp_path: Path) -> None:
    root = copy_project("lsp_basic", tmp_path)
    cache = tmp_path / "cache"
    first = RawSession(root, cache)
    first.initialize()
    answer = first.next_until(lambda m: m.get("id") == 1)
    first.send({"method": "initialized", "params": {}})
    first.next_until(lambda m: m.get("method") == protocol.TESTS_CHANGED)
    assert first.close() == 0
    assert list((cache / "tach-ls" / "initialize").glob("*.json")), "the first session remembers its answer"

    second = RawSession(root, cache)
    second.initialize()
    early = second.next_until(lambda m: m.get("id") == 1)
    assert early["result"] == answer["result"]
    tree = second.next_until(lambda m: m.get("method") == protocol.TESTS_CHANGED)  # before `initialized` was sent
    assert any(n["id"] == "tests/test_calc.py::test_add" for n in tree["params"]["tests"])
    second.send({"method": "initialized", "params": {}})
    uri = path_to_uri(root / "tests" / "test_calc.py")
    second.send({"method": "textDocument/didOpen", "params": {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": (root / "tests" / "test_calc.py").read_text()}}})
    second.send({"id": 2, "method": "textDocument/codeLens", "params": {"textDocument": {"uri": uri}}})
    lenses = second.next_until(lambda m: m.get("id") == 2)
    assert any(lens["command"]["title"] == "Run" for lens in lenses["result"]), "the real server answers what follows"
    assert second.close() == 0
    assert [m for m in second.seen if m.get("id") == 1] == [early], "initialize is answered exactly once"


def test_a_first_session_gets_the_tree_before_it_says_initialized(tmp_path: Path) -> None:
    """No cached answer yet: `initialize_result` answers, and the tree comes before `initialized`."""
    root = copy_project("lsp_basic", tmp_path)
    session = RawSession(root, tmp_path / "cache")
    session.initialize()
    session.next_until(lambda m: m.get("id") == 1)
    tree = session.next_until(lambda m: m.get("method") == protocol.TESTS_CHANGED)
    assert any(n["id"] == "tests/test_calc.py::test_add" for n in tree["params"]["tests"])
    session.send({"method": "initialized", "params": {}})
    assert session.close() == 0
    assert [m for m in session.seen if m.get("id") == 1 and "result" in m].__len__() == 1


@pytest.mark.parametrize("client", ["visual-studio-code", "neovim", "none"])
def test_the_early_answer_is_the_servers_own(tmp_path: Path, client: str) -> None:
    """`initialize_result` against what pygls builds from the server's features, per client profile.

    The regression: a feature added to the server (a new command, a provider)
    without updating `initialize_result`, so first sessions advertise the
    wrong capabilities. The real server's answer lands in the cache file.
    """
    from lsprotocol.converters import get_converter
    from pytest_lsp import client_capabilities

    from tach_ls.initialize_result import initialize_result

    caps = {} if client == "none" else get_converter().unstructure(client_capabilities(client))
    cache = tmp_path / "cache"
    session = RawSession(copy_project("lsp_basic", tmp_path), cache)
    session.initialize(caps)
    early = session.next_until(lambda m: m.get("id") == 1)
    session.send({"method": "initialized", "params": {}})
    assert session.close() == 0
    [stored] = (cache / "tach-ls" / "initialize").glob("*.json")
    assert json.loads(stored.read_text()) == early["result"] == initialize_result(caps)


def test_replay_gives_back_the_consumed_message_first() -> None:
    import io

    message = frame({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}})
    rest = frame({"jsonrpc": "2.0", "method": "initialized", "params": {}})
    stream = io.BytesIO(message + rest)
    raw, parsed = read_message(stream)
    assert raw == message and parsed is not None and parsed["method"] == "initialize"
    replay = Replay(raw, stream)
    again, parsed_again = read_message(replay)  # type: ignore[arg-type]
    assert again == message and parsed_again == parsed
    assert read_message(replay)[1] == {"jsonrpc": "2.0", "method": "initialized", "params": {}}  # type: ignore[arg-type]


def test_the_watch_drops_only_the_answer_already_sent(tmp_path: Path) -> None:
    import io

    out = io.BytesIO()
    watch = InitializeWatch(out, 7, tmp_path / "init.json", answered=True)  # type: ignore[arg-type]
    watch.write(frame({"jsonrpc": "2.0", "method": "window/logMessage", "params": {}}))
    watch.write(frame({"jsonrpc": "2.0", "id": 7, "result": {"capabilities": {"x": 1}}}))
    watch.write(frame({"jsonrpc": "2.0", "id": 7, "result": "a later answer with a reused id passes"}))
    assert out.getvalue().count(b"Content-Length") == 2 and b'"x": 1' not in out.getvalue()
    assert json.loads((tmp_path / "init.json").read_text()) == {"capabilities": {"x": 1}}


def test_a_first_message_that_is_not_initialize_goes_to_the_real_server(tmp_path: Path) -> None:
    session = RawSession(copy_project("lsp_basic", tmp_path), tmp_path / "cache")
    session.send({"id": 5, "method": "tach/noSuchMethod", "params": {}})
    answer = session.next_until(lambda m: m.get("id") == 5)
    assert "error" in answer, answer  # the real server's own answer
    session.initialize()
    session.next_until(lambda m: m.get("id") == 1)
    assert session.close() == 0


def test_writes_after_exit_are_dropped_quietly(tmp_path: Path) -> None:
    import io

    out = io.BytesIO()
    watch = InitializeWatch(out, None, None, answered=False)  # type: ignore[arg-type]
    watch.close()
    watch.write(frame({"jsonrpc": "2.0", "method": "tach/status", "params": {}}))  # no ValueError storm
    watch.flush()
    assert watch.closed
