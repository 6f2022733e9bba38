"""The first moments of an LSP session: the test tree before pygls has finished importing.

Importing pygls and lsprotocol costs about 300 ms (lsprotocol builds a
thousand attrs classes at import), longer than an editor should wait for
its test tree. So `serve_stdio` reads the client's `initialize` itself,
with the standard library only, and answers it: with the result the real
server gave last time when this client and this installation were seen
before (cached per client capabilities and installed versions), else with
`initialize_result` (the answer the server gives, which does not depend on
the client). It indexes the workspace folders (from the index cache:
milliseconds; a first build forks a helper, the process being single
threaded still) and sends their `tach/testsChanged`, and only then imports
the server (a thread importing meanwhile would hold the GIL most of that
time). Then it hands the connection to the real server: `initialize` is
replayed to it (so it sets up its folders and settings as usual) and its
answer to that one request is not sent again, only remembered for next
time (and a difference from the early one reported on stderr).

Lenses, runs and everything else are the real server's: requests the
client sends meanwhile wait in the pipe until it reads them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any, BinaryIO

_LENGTH = b"content-length:"


def read_message(stream: BinaryIO) -> tuple[bytes, dict[str, Any] | None]:
    """One framed JSON-RPC message: (its raw bytes, the parsed body or None if unreadable)."""
    raw = b""
    length = None
    while True:
        line = stream.readline()
        raw += line
        if not line:
            return raw, None
        if line.lower().startswith(_LENGTH):
            try:
                length = int(line[len(_LENGTH) :].strip())
            except ValueError:
                return raw, None
        if line in (b"\r\n", b"\n"):
            break
    if length is None:
        return raw, None
    body = stream.read(length)
    raw += body
    try:
        message = json.loads(body)
    except ValueError:
        return raw, None
    return raw, message if isinstance(message, dict) else None


def frame(message: dict[str, Any]) -> bytes:
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


class Replay:
    """A binary stream that first gives back bytes already read, then the real stream."""

    def __init__(self, prefix: bytes, stream: BinaryIO) -> None:
        self.prefix = prefix
        self.stream = stream

    def readline(self) -> bytes:
        if self.prefix:
            end = self.prefix.find(b"\n")
            cut = len(self.prefix) if end < 0 else end + 1
            line, self.prefix = self.prefix[:cut], self.prefix[cut:]
            return line if line.endswith(b"\n") else line + self.stream.readline()
        return self.stream.readline()

    def read(self, n: int) -> bytes:
        if self.prefix:
            part, self.prefix = self.prefix[:n], self.prefix[n:]
            return part + (self.stream.read(n - len(part)) if len(part) < n else b"")
        return self.stream.read(n)


class InitializeWatch:
    """The server's stdout: remembers its `initialize` result, and drops it if it was already sent.

    Once closed (the client said `exit`), writes are dropped: pygls closes stdout before it exits,
    and a late notification (an engine shutting down says so) would otherwise fail, be reported as an
    error, whose report fails again, and so on through thousands of tracebacks on stderr.
    """

    def __init__(self, stream: BinaryIO, request_id: Any, cache: Path | None, answered: bool, sent: Any = None) -> None:
        self.stream = stream
        self.sent = sent  # the early answer, if one went out
        self.request_id = request_id
        self.cache = cache
        self.answered = answered
        self.watching = request_id is not None
        self.closed = False

    def write(self, data: bytes) -> None:
        if self.closed:
            return
        if self.watching and self._is_initialize_response(data):
            self.watching = False
            if self.answered:
                return
        try:
            self.stream.write(data)
            self.stream.flush()
        except ValueError:  # closed underneath us
            self.closed = True

    def flush(self) -> None:
        if not self.closed:
            self.stream.flush()

    def close(self) -> None:
        self.closed = True
        self.stream.close()

    def _is_initialize_response(self, data: bytes) -> bool:
        _head, _sep, body = data.partition(b"\r\n\r\n")
        try:
            message = json.loads(body)
        except ValueError:
            return False
        if not isinstance(message, dict) or message.get("id") != self.request_id or "method" in message:
            return False
        if "result" in message and self.cache is not None:
            _store(self.cache, message["result"])
            if self.sent is not None and message["result"] != self.sent:
                sys.stderr.write("tach-ls: the early answer to initialize differed from the server's; the next session sends the server's\n")
        return True


def _store(path: Path, result: Any) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_suffix(f".{os.getpid()}.tmp")
        temp.write_text(json.dumps(result))
        os.replace(temp, path)
    except OSError:
        pass


def cache_path(params: dict[str, Any]) -> Path:
    """Where the `initialize` result for this client and this installation is kept."""
    key = hashlib.blake2b(digest_size=12)
    key.update(json.dumps([params.get("capabilities"), sys.version], sort_keys=True).encode())
    for module in ("tach_ls.server", "tach_ls.protocol", "pygls", "lsprotocol"):
        spec = importlib.util.find_spec(module)
        origin = spec.origin if spec is not None else None
        try:
            key.update(f"{origin}:{os.stat(origin).st_mtime_ns}".encode() if origin else b"-")
        except OSError:
            key.update(b"?")
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tach-ls" / "initialize" / f"{key.hexdigest()}.json"


def folder_roots(params: dict[str, Any]) -> list[Path]:
    from tach_ls.uris import uri_to_path

    folders = params.get("workspaceFolders") or []
    uris: list[str] = [f["uri"] for f in folders if isinstance(f, dict) and isinstance(f.get("uri"), str)]
    if not uris and isinstance(params.get("rootUri"), str):
        uris = [params["rootUri"]]
    return [uri_to_path(u) for u in uris]


def early_trees(roots: list[Path]) -> list[dict[str, Any]]:
    """`tach/testsChanged` params for every test file of the folders, as the server sends them."""
    from tach_ls import protocol
    from tach_ls.index import WorkspaceIndex
    from tach_ls.uris import path_to_uri
    from tach_ls.views import tests_changed

    out = []
    for root in roots:
        index = WorkspaceIndex(root, parallel=True)  # called before any other thread exists: fork is safe
        index.build()
        for rel, fi in index.files.items():
            path = index.root / rel
            try:
                lines = path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
            except OSError:
                lines = []
            out.append(protocol.payload(tests_changed(fi, path_to_uri(path), lines, None)))
    return out


def _import_server(failed: list[BaseException]) -> None:
    try:
        import tach_ls.server  # noqa: F401 - the heavy import, done while the client waits on us
    except BaseException as exc:  # noqa: BLE001 - re-raised on the main thread
        failed.append(exc)


def serve_stdio() -> None:
    """Serve LSP on stdin/stdout, answering `initialize` early when a cached answer fits."""
    from tach_ls import protocol

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    failed: list[BaseException] = []
    importer = threading.Thread(target=_import_server, args=(failed,), name="tach-ls-import", daemon=True)
    raw, message = read_message(stdin)
    request_id, cache, answered, cached = None, None, False, None
    if message is not None and message.get("method") == "initialize" and "id" in message:
        request_id = message["id"]
        found = message.get("params")
        params: dict[str, Any] = found if isinstance(found, dict) else {}
        try:
            cache = cache_path(params)
            cached = json.loads(cache.read_text()) if cache.exists() else None
        except (OSError, ValueError):
            cached = None
        if cached is None:
            from tach_ls.initialize_result import initialize_result

            cached = initialize_result(params.get("capabilities"))  # a first session: the answer the server will give (see that module)
        if cached is not None:
            # The import waits: it would hold the GIL most of the time the trees take (the first
            # tree came after 170-520 ms with both running, and after ~140 ms alone).
            stdout.write(frame({"jsonrpc": "2.0", "id": request_id, "result": cached}))
            stdout.flush()
            answered = True
            try:
                trees = early_trees(folder_roots(params))
            except Exception:  # noqa: BLE001 - the real server indexes again and reports properly
                trees = []
            for tree in trees:
                stdout.write(frame({"jsonrpc": "2.0", "method": protocol.TESTS_CHANGED, "params": tree}))
            stdout.flush()
    importer.start()
    importer.join()
    if failed:
        raise failed[0]
    from tach_ls.server import serve

    serve(stdin=Replay(raw, stdin), stdout=InitializeWatch(stdout, request_id, cache, answered, cached if answered else None))
