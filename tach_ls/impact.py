"""Test impact analysis: what each test depended on, and which tests a change can affect.

The store (SQLite in the workspace's `.tach-ls/`, WAL mode, one transaction
per recorded run, so an editor and a terminal can share it and a crash
mid-write leaves the previous state) keeps for each test: the code blocks
it executed (from per-test line coverage mapped through `fingerprints`),
the workspace files it opened, the network endpoints it connected to, its
last outcome and duration; for each file its blocks' fingerprints and
content hash as of the last recording; and an environment key.

`select()` returns every test a change can affect, each with its reason:
tests that executed a changed block; that read a changed data file; new
tests (no record); tests that failed last time; tests whose network use a
policy selects; and, conservatively, for changes it cannot attribute (a
module's top level or a class body changed, a file deleted, a compiled
extension rebuilt) every test that executed anything in that file or in a
module that imports it. If the environment key changed, everything.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tach_ls.fingerprints import MODULE, Block, LineIndex, blocks_of_source

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
-- schema 2: file_blocks has kind/start/end_ (older stores are dropped by _migrate)
CREATE TABLE IF NOT EXISTS tests (nodeid TEXT PRIMARY KEY, outcome TEXT, duration_ms REAL, recorded REAL, complete INTEGER);
CREATE TABLE IF NOT EXISTS test_blocks (nodeid TEXT, file TEXT, block TEXT, PRIMARY KEY (nodeid, file, block)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS test_blocks_by_file ON test_blocks (file, block);
CREATE TABLE IF NOT EXISTS test_files (nodeid TEXT, file TEXT, PRIMARY KEY (nodeid, file)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS test_files_by_file ON test_files (file);
CREATE TABLE IF NOT EXISTS test_net (nodeid TEXT, endpoint TEXT, PRIMARY KEY (nodeid, endpoint)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS file_blocks (file TEXT, block TEXT, digest TEXT, kind TEXT, start INTEGER, end_ INTEGER, PRIMARY KEY (file, block)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS file_state (file TEXT PRIMARY KEY, digest TEXT, imports TEXT);
"""
FAILED = ("failed", "error", "crashed", "timeout")
SCHEMA_VERSION = 2
Adder = Callable[[Iterable[str], str], None]


@dataclass
class TestRecord:
    """What one test run told us about a test."""

    __test__ = False

    nodeid: str
    outcome: str
    duration_ms: float = 0.0
    lines: dict[str, set[int]] = field(default_factory=dict)  # rel file -> executed lines
    opened: set[str] = field(default_factory=set)  # rel files read or written
    endpoints: set[str] = field(default_factory=set)  # "host:port"
    complete: bool = True  # False when coverage was partial (ring overflow): never trusted to exclude


@dataclass(frozen=True)
class Selected:
    nodeid: str
    reason: str


@dataclass
class NetworkPolicy:
    """[tool.tach-ls.network]: endpoint glob -> "ignore" | "always" | {"when": file glob}."""

    rules: dict[str, object] = field(default_factory=dict)

    def selects(self, endpoint: str, changed: Iterable[str]) -> str | None:
        for pattern, rule in self.rules.items():
            if not fnmatch.fnmatch(endpoint, pattern):
                continue
            if rule == "always":
                return f"connects to {endpoint} (network policy: always)"
            if isinstance(rule, dict) and isinstance(rule.get("when"), str):
                hits = [c for c in changed if fnmatch.fnmatch(c, rule["when"])]
                if hits:
                    return f"connects to {endpoint} and {hits[0]} changed (network policy)"
            return None
        return None


def content_digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


class ImpactStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self._migrate()
        self.db.executescript(SCHEMA)
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))

    def _migrate(self) -> None:
        """A store from another schema is dropped: it is a cache of what runs told us."""
        try:
            row = self.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        except sqlite3.OperationalError:
            return  # a new store
        if row is None or row[0] != str(SCHEMA_VERSION):
            for table in ("meta", "tests", "test_blocks", "test_files", "test_net", "file_blocks", "file_state"):
                self.db.execute(f"DROP TABLE IF EXISTS {table}")  # noqa: S608 - fixed names

    def close(self) -> None:
        self.db.close()

    # -- environment -----------------------------------------------------------------
    def env_key(self) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key='env'").fetchone()
        return row[0] if row else None

    # -- recording ---------------------------------------------------------------------
    def record(self, root: Path, records: Iterable[TestRecord], env_key: str) -> None:
        """Store a run's records, and the fingerprints of the files they touched, atomically."""
        records = list(records)
        files = {f for r in records for f in r.lines} | {f for r in records for f in r.opened}
        fingerprints: dict[str, tuple[list[Block] | None, str, list[str]]] = {}
        known = self.recorded_files()
        unchanged: dict[str, list[Block]] = {}
        for rel in files:
            try:
                data = (root / rel).read_bytes()
            except OSError:
                continue
            digest = content_digest(data)
            if known.get(rel) == digest:
                unchanged[rel] = self._stored_blocks(rel)  # same text: no need to parse it again
                continue
            if not rel.endswith(".py"):  # a data file: its digest is all change detection needs
                fingerprints[rel] = ([], digest, [])
                continue
            blocks = blocks_of_source(data)
            fingerprints[rel] = (blocks, digest, sorted(_imports(data, rel)))
        cur = self.db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            cur.execute("INSERT OR REPLACE INTO meta VALUES ('env', ?)", (env_key,))
            for rel, (blocks, digest, imports) in fingerprints.items():
                cur.execute("DELETE FROM file_blocks WHERE file=?", (rel,))
                cur.executemany("INSERT INTO file_blocks VALUES (?,?,?,?,?,?)", [(rel, b.name, b.digest, b.kind, b.start, b.end) for b in blocks or []])
                cur.execute("INSERT OR REPLACE INTO file_state VALUES (?,?,?)", (rel, digest, json.dumps(imports)))
            indexes = {rel: LineIndex(fp[0]) for rel, fp in fingerprints.items() if fp[0] is not None}
            indexes.update({rel: LineIndex(blocks) for rel, blocks in unchanged.items() if blocks})
            now = time.time()
            for r in records:
                cur.execute("INSERT OR REPLACE INTO tests VALUES (?,?,?,?,?)", (r.nodeid, r.outcome, r.duration_ms, now, int(r.complete)))
                for table in ("test_blocks", "test_files", "test_net"):
                    cur.execute(f"DELETE FROM {table} WHERE nodeid=?", (r.nodeid,))  # noqa: S608 - fixed names
                rows = set()
                for rel, lines in r.lines.items():
                    index = indexes.get(rel)
                    if index is None:
                        rows.add((r.nodeid, rel, MODULE))
                        continue
                    rows.update((r.nodeid, rel, index.block_of(line)) for line in lines)
                cur.executemany("INSERT OR IGNORE INTO test_blocks VALUES (?,?,?)", sorted(rows))
                cur.executemany("INSERT OR IGNORE INTO test_files VALUES (?,?)", [(r.nodeid, f) for f in sorted(r.opened)])
                cur.executemany("INSERT OR IGNORE INTO test_net VALUES (?,?)", [(r.nodeid, e) for e in sorted(r.endpoints)])
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise

    def forget(self, nodeids: Iterable[str]) -> None:
        cur = self.db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        for n in nodeids:
            for table in ("tests", "test_blocks", "test_files", "test_net"):
                cur.execute(f"DELETE FROM {table} WHERE nodeid=?", (n,))  # noqa: S608
        cur.execute("COMMIT")

    def _stored_blocks(self, rel: str) -> list[Block]:
        rows = self.db.execute("SELECT block, kind, start, end_, digest FROM file_blocks WHERE file=?", (rel,))
        return [Block(name, kind, start, end, digest) for name, kind, start, end, digest in rows]

    # -- queries ---------------------------------------------------------------------
    def known_tests(self) -> dict[str, tuple[str, float, bool]]:
        return {n: (o, d, bool(c)) for n, o, d, c in self.db.execute("SELECT nodeid, outcome, duration_ms, complete FROM tests")}

    def recorded_files(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT file, digest FROM file_state"))

    def reason_for(self, nodeid: str) -> list[str]:
        """What a test was recorded depending on (for hovers and --explain)."""
        files = [f"{f}::{b}" for f, b in self.db.execute("SELECT file, block FROM test_blocks WHERE nodeid=?", (nodeid,))]
        return files

    # -- change detection --------------------------------------------------------------
    def changed_files(self, root: Path, candidates: Iterable[str] | None = None) -> list[str]:
        """Files whose content differs from the last recording (or that are gone)."""
        recorded = self.recorded_files()
        names = set(recorded) | set(candidates or ())
        changed = []
        for rel in sorted(names):
            try:
                digest = content_digest((root / rel).read_bytes())
            except OSError:
                digest = None
            if digest != recorded.get(rel):
                changed.append(rel)
        return changed

    # -- selection ----------------------------------------------------------------------
    def select(
        self,
        root: Path,
        changed: list[str],
        all_tests: Iterable[str],
        env_key: str,
        policy: NetworkPolicy | None = None,
        texts: Mapping[str, bytes] | None = None,
    ) -> list[Selected]:
        """Every test the change can affect, with the first reason found for it."""
        all_tests = list(all_tests)
        reasons: dict[str, str] = {}

        def add(nodeids: Iterable[str], reason: str) -> None:
            for n in nodeids:
                reasons.setdefault(n, reason)

        if self.env_key() != env_key:
            return [Selected(n, "the environment changed (interpreter, lock files or pytest config)") for n in all_tests]
        known = self.known_tests()
        add((n for n in all_tests if n not in known), "new test (no record yet)")
        add((n for n, (o, _d, _c) in known.items() if o in FAILED and n in set(all_tests)), "failed last time")
        add((n for n, (_o, _d, c) in known.items() if not c and n in set(all_tests)), "its coverage was incomplete last time")
        importers = self._importers()
        for rel in changed:
            self._select_for_file(root, rel, add, importers, texts)
        if policy is not None and policy.rules:
            for nodeid, endpoint in self.db.execute("SELECT nodeid, endpoint FROM test_net"):
                why = policy.selects(endpoint, changed)
                if why:
                    add([nodeid], why)
        present = set(all_tests)
        return [Selected(n, r) for n, r in reasons.items() if n in present]

    def _select_for_file(self, root: Path, rel: str, add_: Adder, importers: dict[str, set[str]], texts: Mapping[str, bytes] | None) -> None:
        readers = [n for (n,) in self.db.execute("SELECT nodeid FROM test_files WHERE file=?", (rel,))]
        add_(readers, f"read {rel}, which changed")
        if not rel.endswith((".py", ".pyi", ".so", ".pyd")):
            return
        old = dict(self.db.execute("SELECT block, digest FROM file_blocks WHERE file=?", (rel,)))
        try:
            data = texts[rel] if texts and rel in texts else (root / rel).read_bytes()
        except OSError:
            data = None
        new_blocks = blocks_of_source(data) if data is not None and rel.endswith(".py") else None
        if new_blocks is None or not old:
            why = "was deleted" if data is None else ("is not Python source we can read" if new_blocks is None else "was not recorded before")
            self._select_users(rel, f"{rel} {why}", add_, importers)
            return
        new = {b.name: b.digest for b in new_blocks}
        for name, digest in old.items():
            if new.get(name) == digest:
                continue
            kind_module_level = name == MODULE or (name in new and _is_class(new_blocks, name)) or (name not in new and _was_class(name, old))
            if kind_module_level:
                self._select_users(rel, f"{rel}: {'module top level' if name == MODULE else 'class ' + name + ' body'} changed", add_, importers)
            else:
                users = [n for (n,) in self.db.execute("SELECT nodeid FROM test_blocks WHERE file=? AND block=?", (rel, name))]
                add_(users, f"executed {rel}::{name}, which changed")

    def _select_users(self, rel: str, reason: str, add: Adder, importers: dict[str, set[str]]) -> None:
        """Conservative: tests that executed anything in `rel` or in a module importing it."""
        files = {rel}
        stack = [rel]
        while stack:
            for importer in importers.get(stack.pop(), ()):
                if importer not in files:
                    files.add(importer)
                    stack.append(importer)
        marks = ",".join("?" * len(files))
        users = [n for (n,) in self.db.execute(f"SELECT DISTINCT nodeid FROM test_blocks WHERE file IN ({marks})", sorted(files))]  # noqa: S608
        add(users, reason)

    def _importers(self) -> dict[str, set[str]]:
        """file -> files that import it (from the recorded import lists, matched by module path)."""
        by_module: dict[str, str] = {}
        imports: dict[str, list[str]] = {}
        for rel, raw in self.db.execute("SELECT file, imports FROM file_state"):
            if not rel.endswith(".py"):
                continue
            imports[rel] = json.loads(raw or "[]")
            module = rel[:-3].replace("/", ".")
            if module.endswith(".__init__"):
                module = module[: -len(".__init__")]
            for suffix in _suffixes(module):
                by_module.setdefault(suffix, rel)
        out: dict[str, set[str]] = {}
        for rel, mods in imports.items():
            for mod in mods:
                target = by_module.get(mod)
                if target is not None and target != rel:
                    out.setdefault(target, set()).add(rel)
        return out


def _suffixes(module: str) -> list[str]:
    """src.pkg.mod -> ["src.pkg.mod", "pkg.mod", "mod"]: a layout-agnostic match for imports."""
    parts = module.split(".")
    return [".".join(parts[i:]) for i in range(len(parts))]


def _is_class(blocks: list[Block], name: str) -> bool:
    return any(b.name == name and b.kind == "class" for b in blocks)


def _was_class(name: str, old: dict[str, str]) -> bool:
    return any(other.startswith(name + ".") for other in old)


def _imports(data: bytes, rel: str) -> set[str]:
    """Modules a file imports (absolute names; relative imports resolved against its path)."""
    import ast

    try:
        tree = ast.parse(data)
    except (SyntaxError, ValueError, RecursionError):
        return set()
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = rel.split("/")[:-1]
                if node.level > 1:
                    package = package[: -(node.level - 1)] if node.level - 1 <= len(package) else []
                base = ".".join(package + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base:
                found.add(base)
                found.update(f"{base}.{a.name}" for a in node.names)
    return found
