"""Test impact analysis: what each test depended on, and which tests a change can affect.

The store (SQLite in the workspace's `.tach-ls/`, WAL mode, one transaction
per recorded run, so an editor and a terminal can share it and a crash
mid-write leaves the previous state) keeps for each test: for every
workspace file it executed or opened, the version of that file it ran
against (a content digest) and the lines it executed; the network
endpoints it connected to; its last outcome and duration. It also keeps the
text of each recorded Python file version (to diff against later), the
latest version of each file with its imports, and an environment key.

`select()` returns every test a change can affect, each with its reason:
tests that executed a line a changed function's new version can behave
differently on (`impact_diff`: statement-level, scoping-aware); that read a
changed data file; new tests (no record); tests that failed last time;
tests whose network use a policy selects; and, conservatively, for changes
it cannot attribute (a module's top level or a class body changed, a def
added or removed, a file deleted, a compiled extension rebuilt) every test
that executed anything in that file or in a module that imports it. Each
test is judged against the version it last ran on, so a partial run in
between never hides a change from the tests it did not run. If the
environment key changed, everything.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import sqlite3
import time
import zlib
from array import array
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tach_ls.impact_diff import FileChange, diff_sources

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS tests (nodeid TEXT PRIMARY KEY, outcome TEXT, duration_ms REAL, recorded REAL, complete INTEGER, spawns INTEGER);
-- per test and file: the file's version (content digest) it ran against, its executed lines, whether it open()ed it
CREATE TABLE IF NOT EXISTS test_files (nodeid TEXT, file TEXT, digest TEXT, lines BLOB, opened INTEGER, PRIMARY KEY (nodeid, file)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS test_files_by_file ON test_files (file);
CREATE TABLE IF NOT EXISTS test_net (nodeid TEXT, endpoint TEXT, PRIMARY KEY (nodeid, endpoint)) WITHOUT ROWID;
-- the text of every Python file version some test ran against (zlib), to diff against the current one
CREATE TABLE IF NOT EXISTS sources (digest TEXT PRIMARY KEY, text BLOB) WITHOUT ROWID;
-- the latest recorded version of each file, and what it imports (for the conservative importers rule)
CREATE TABLE IF NOT EXISTS file_state (file TEXT PRIMARY KEY, digest TEXT, imports TEXT);
"""
FAILED = ("failed", "error", "crashed", "timeout")
SCHEMA_VERSION = 4
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
    spawns: bool = False  # it started processes: code its coverage cannot show may matter


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


ABSENT = "absent"
"""The digest of a file that does not exist (a test that checks a file is missing depends on that too)."""


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
        self._diffs: dict[tuple[str, str], FileChange | None] = {}

    def _migrate(self) -> None:
        """A store from another schema is dropped: it is a cache of what runs told us."""
        try:
            row = self.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        except sqlite3.OperationalError:
            return  # a new store
        if row is None or row[0] != str(SCHEMA_VERSION):
            for table in ("meta", "tests", "test_blocks", "test_files", "test_net", "file_blocks", "file_state", "sources"):
                self.db.execute(f"DROP TABLE IF EXISTS {table}")  # noqa: S608 - fixed names

    def close(self) -> None:
        self.db.close()

    # -- environment -----------------------------------------------------------------
    def env_key(self) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key='env'").fetchone()
        return row[0] if row else None

    # -- recording ---------------------------------------------------------------------
    def record(self, root: Path, records: Iterable[TestRecord], env_key: str) -> None:
        """Store a run's records, each file with the version the tests saw, atomically."""
        records = list(records)
        files = {f for r in records for f in r.lines} | {f for r in records for f in r.opened}
        known = dict(self.db.execute("SELECT file, digest FROM file_state"))
        digests: dict[str, str] = {}
        sources: dict[str, tuple[bytes, str]] = {}  # digest -> (compressed text, imports)
        for rel in files:
            try:
                data = (root / rel).read_bytes()
            except OSError:
                digests[rel] = ABSENT  # a test looked for it and it was not there: changed when it appears
                continue
            digest = digests[rel] = content_digest(data)
            if rel.endswith(".py") and known.get(rel) != digest:
                sources[digest] = (zlib.compress(data, 1), json.dumps(sorted(_imports(data, rel))))
        cur = self.db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            cur.execute("INSERT OR REPLACE INTO meta VALUES ('env', ?)", (env_key,))
            for rel, digest in digests.items():
                if known.get(rel) != digest:
                    imports = sources[digest][1] if digest in sources else "[]"
                    cur.execute("INSERT OR REPLACE INTO file_state VALUES (?,?,?)", (rel, digest, imports))
            cur.executemany("INSERT OR IGNORE INTO sources VALUES (?,?)", [(d, text) for d, (text, _i) in sources.items()])
            now = time.time()
            for r in records:
                cur.execute("INSERT OR REPLACE INTO tests VALUES (?,?,?,?,?,?)", (r.nodeid, r.outcome, r.duration_ms, now, int(r.complete), int(r.spawns)))
                for table in ("test_files", "test_net"):
                    cur.execute(f"DELETE FROM {table} WHERE nodeid=?", (r.nodeid,))  # noqa: S608 - fixed names
                rows = [
                    (r.nodeid, rel, digests.get(rel, ""), array("I", sorted(r.lines.get(rel, ()))).tobytes(), int(rel in r.opened))
                    for rel in sorted(set(r.lines) | r.opened)
                ]
                cur.executemany("INSERT INTO test_files VALUES (?,?,?,?,?)", rows)
                cur.executemany("INSERT OR IGNORE INTO test_net VALUES (?,?)", [(r.nodeid, e) for e in sorted(r.endpoints)])
            # Versions no test depends on any more are not needed to judge a change.
            cur.execute("DELETE FROM sources WHERE digest NOT IN (SELECT digest FROM test_files UNION SELECT digest FROM file_state)")
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise

    def forget(self, nodeids: Iterable[str]) -> None:
        cur = self.db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        for n in nodeids:
            for table in ("tests", "test_files", "test_net"):
                cur.execute(f"DELETE FROM {table} WHERE nodeid=?", (n,))  # noqa: S608
        cur.execute("COMMIT")

    # -- queries ---------------------------------------------------------------------
    def known_tests(self) -> dict[str, tuple[str, float, bool]]:
        return {n: (o, d, bool(c)) for n, o, d, c in self.db.execute("SELECT nodeid, outcome, duration_ms, complete FROM tests")}

    # -- change detection --------------------------------------------------------------
    def changed_files(self, root: Path, candidates: Iterable[str] | None = None) -> list[str]:
        """Files whose content differs from a version some test was recorded against (or that are gone)."""
        versions: dict[str, set[str]] = {}
        for rel, digest in self.db.execute("SELECT DISTINCT file, digest FROM test_files UNION SELECT file, digest FROM file_state"):
            versions.setdefault(rel, set()).add(digest)
        changed = []
        for rel in sorted(set(versions) | set(candidates or ())):
            try:
                digest = content_digest((root / rel).read_bytes())
            except OSError:
                digest = ABSENT
            if versions.get(rel, set()) - {digest} or rel not in versions:
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
        present = set(all_tests)
        add((n for n in all_tests if n not in known), "new test (no record yet)")
        add((n for n, (o, _d, _c) in known.items() if o in FAILED and n in present), "failed last time")
        add((n for n, (_o, _d, c) in known.items() if not c and n in present), "its coverage was incomplete last time")
        if changed:
            spawners = [n for (n,) in self.db.execute("SELECT nodeid FROM tests WHERE spawns=1")]
            add(spawners, f"it starts processes, whose code tach-ls cannot see, and {changed[0]} changed")
        importers = self._importers()
        for rel in changed:
            self._select_for_file(root, rel, add, importers, texts)
        if policy is not None and policy.rules:
            for nodeid, endpoint in self.db.execute("SELECT nodeid, endpoint FROM test_net"):
                why = policy.selects(endpoint, changed)
                if why:
                    add([nodeid], why)
        return [Selected(n, r) for n, r in reasons.items() if n in present]

    def _select_for_file(self, root: Path, rel: str, add: Adder, importers: dict[str, set[str]], texts: Mapping[str, bytes] | None) -> None:
        try:
            data: bytes | None = texts[rel] if texts and rel in texts else (root / rel).read_bytes()
        except OSError:
            data = None
        digest = content_digest(data) if data is not None else ABSENT
        by_version: dict[str, list[tuple[str, bytes, int]]] = {}
        for nodeid, version, lines, opened in self.db.execute("SELECT nodeid, digest, lines, opened FROM test_files WHERE file=?", (rel,)):
            if version != digest:
                by_version.setdefault(version, []).append((nodeid, lines, opened))
        for version, rows in by_version.items():
            add((n for n, _l, opened in rows if opened), f"read {rel}, which changed")
            executed = [(n, lines) for n, lines, _o in rows if lines]
            if not executed:
                continue
            change, why = self._change(rel, version, data, digest)
            if change is None or change.module_level:
                self._select_users(rel, f"{rel}: {why or change.module_level}", add, importers)  # type: ignore[union-attr]
                continue
            for nodeid, blob in executed:
                ran = set(array("I", blob))
                for name, ((start, end), triggers) in change.functions.items():
                    if ran & triggers if triggers is not None else any(start <= line <= end for line in ran):
                        add([nodeid], f"executed {rel}::{name}, which changed")
                        break

    def _change(self, rel: str, version: str, data: bytes | None, digest: str | None) -> tuple[FileChange | None, str]:
        """How `rel` changed since `version` (cached per pair of versions); None and why when it cannot be told."""
        if data is None:
            return None, "was deleted"
        if not rel.endswith(".py"):
            return None, "is not Python source we can read"
        key = (version, digest or "")
        if key not in self._diffs:
            row = self.db.execute("SELECT text FROM sources WHERE digest=?", (version,)).fetchone()
            self._diffs[key] = diff_sources(zlib.decompress(row[0]), data) if row else None
        change = self._diffs[key]
        return change, "" if change is not None else "was not recorded before, or does not parse"

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
        users = [n for (n,) in self.db.execute(f"SELECT DISTINCT nodeid FROM test_files WHERE file IN ({marks})", sorted(files))]  # noqa: S608
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
