"""The workspace index: every test file's items, kept current file by file.

`WorkspaceIndex.build()` walks the workspace as pytest would, parses each
test module (or takes it from the persistent cache), and applies the
config's `--deselect`, `-k` and `-m` (items stay in the index, flagged
`deselected`, so the editor can still offer them). `update_file()` re-indexes
one file from an editor buffer; a buffer that does not parse keeps its last
good items (flagged stale) and reports the syntax error. Conftest files are
read for fixtures and `collect_ignore`; imported base classes are found by
parsing the module they come from.
"""

from __future__ import annotations

import ast
import gc
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tach_ls.buffer_edits import BufferEdits
from tach_ls.cachedir import cache_dir
from tach_ls.discovery_memo import DiscoveryMemo
from tach_ls.config import PytestConfig, resolve
from tach_ls.discovery_ast import discover
from tach_ls.discovery_inputs import MAX_FILE_BYTES, CollectOptions, attach_resolver, matches_name, parse
from tach_ls.fixtures_static import FixtureLookup, fixture_from_def
from tach_ls.index_cache import IndexCache, signature
from tach_ls.index_parallel import parallel_map
from tach_ls.list_fastpath import Sig
from tach_ls.model import FileError, FileIndex, FixtureDef, RelPath, TestItem, file_index_from_payload, file_index_to_payload
from tach_ls.module_scan import ModuleScan, is_fixture_decorator, scan_module
from tach_ls.selectexpr import ExpressionError, Predicate, compile_expression, keyword_matcher, mark_matcher
from tach_ls.walk import Walker, relpath, to_file_errors, walk

MAX_READ = 64 * 1024 * 1024


@dataclass
class _Conftest:
    path: Path
    scan: ModuleScan | None
    fixtures: list[FixtureDef] = field(default_factory=list)
    ignore: list[Path] = field(default_factory=list)
    ignore_glob: list[str] = field(default_factory=list)
    error: FileError | None = None


def read_source(path: Path) -> tuple[bytes | None, FileError | None]:
    """Bytes of a regular file, or an error that says why not (never blocks on a FIFO)."""
    rel = str(path)
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            return None, FileError(rel, "not a regular file: skipped", None, "not-a-file")
        if st.st_size > MAX_READ:
            return None, FileError(rel, f"file too large to index statically ({st.st_size / 1e6:.1f} MB)", None, "too-large")
        with open(path, "rb") as fh:
            return fh.read(MAX_READ + 1), None
    except OSError as exc:
        return None, FileError(rel, f"cannot read: {exc.strerror or exc}", None, "io")


class WorkspaceIndex:
    """Static index of one workspace (one pytest rootdir)."""

    def __init__(
        self,
        root: Path,
        args: list[str] | None = None,
        *,
        use_cache: bool = True,
        inifile: str | None = None,
        rootdir: str | None = None,
        parallel: bool = False,
    ) -> None:
        self.invocation_dir = Path(os.path.abspath(root))
        self.parallel = parallel  # fork a helper for a cold build: only in single-threaded (CLI) use
        self.args = list(args or [])
        self.cfg: PytestConfig = resolve(self.args, self.invocation_dir, inifile=inifile, rootdir_arg=rootdir)
        self.root = self.cfg.rootdir
        self.options = CollectOptions(
            tuple(self.cfg.python_functions), tuple(self.cfg.python_classes), self.cfg.collect_imported_tests, self.cfg.escape_ids
        )
        self.files: dict[RelPath, FileIndex] = {}
        self.walk_errors: list[FileError] = []
        self.config_errors: list[str] = []
        self.node_filters: list[str] = []
        self._roots: list[Path] = []
        self._args_paths: list[Path] = []
        self.last_changed: list[RelPath] = []  # files re-indexed by the last update_file()
        self.stats = {"parsed": 0, "cached": 0}
        self.dir_mtimes: dict[Path, int] = {}
        self.file_sigs: dict[RelPath, tuple[int, int] | None] = {}  # as read
        self.file_deps: dict[RelPath, dict[str, tuple[int, int] | None]] = {}  # files parsed vs taken from the cache, last build
        self._conftests: dict[Path, _Conftest | None] = {}
        self._scans: dict[Path, tuple[object, ModuleScan | None]] = {}
        self._buffers = BufferEdits(lambda name: matches_name(name, self.options.python_functions), MAX_FILE_BYTES)
        self._cache = IndexCache(cache_dir(self.root) if use_cache else None, self.cfg.fingerprint())
        self._deselect = self._compile_selection()

    # -- building ----------------------------------------------------------------
    def collection_args(self) -> list[Path]:
        """The paths pytest would start from, and node-id filters from the args."""
        args = [*self.cfg.args, *(a for a in self.args if not a.startswith("-"))]
        base = self.invocation_dir
        if not args and self.invocation_dir == self.root and self.cfg.testpaths:
            import glob

            for pattern in self.cfg.testpaths:
                args.extend(sorted(glob.iglob(str(self.root / pattern), recursive=True)))
        if not args:
            args = [str(self.invocation_dir)]
        paths: list[Path] = []
        for arg in args:
            file_part, sep, rest = arg.partition("::")
            path = Path(os.path.abspath(base / file_part))
            paths.append(path)
            if sep:
                self.node_filters.append(f"{relpath(path, self.root)}::{rest}")
        return paths

    def build(self) -> None:
        """Index the workspace, the cyclic GC paused: a build makes one large acyclic structure, which
        the collector would only walk again and again as it grows (15-25% of a cold build of Click)."""
        paused = gc.isenabled()
        gc.disable()
        try:
            self._build()
        finally:
            if paused:
                gc.enable()

    def _build(self) -> None:
        self._cache.load()
        self._args_paths = self.collection_args()
        self._roots = [p for p in self._args_paths if p.is_dir()]
        result = walk(self.cfg, self._args_paths, self._conftest_ignores)
        self.walk_errors = to_file_errors(result, self.root)
        self.dir_mtimes = result.dir_mtimes
        self.files = {}
        misses: list[tuple[Path, RelPath, tuple[int, int] | None, bytes]] = []
        for path in result.files:
            rel = relpath(path, self.root)
            fi, miss = self._from_cache(path, rel)
            if fi is not None:
                self.files[rel] = fi
            elif miss is not None:
                self.files[rel] = FileIndex(rel)  # keeps walk order; filled below
                misses.append(miss)
        parsed = parallel_map(self._parse_job, misses, lambda job: len(job[3]), self.parallel)
        for (_path, rel, sig, data), (deps, payload) in zip(misses, parsed):
            self.stats["parsed"] += 1
            self.file_deps[rel] = deps
            self._cache.store(rel, sig, data, deps, payload)
            fi = file_index_from_payload(rel, payload)
            self._apply_selection(fi)
            self.files[rel] = fi
        self._cache.prune(set(self.files))
        self._cache.save()

    def _from_cache(self, path: Path, rel: RelPath) -> tuple[FileIndex | None, tuple[Path, RelPath, tuple[int, int] | None, bytes] | None]:
        """The file's index from the cache, or the job to parse it (or an error index)."""
        sig = signature(path)
        holder: dict[str, bytes | None] = {}

        def read() -> bytes | None:
            if "data" not in holder:
                holder["data"] = read_source(path)[0]
            return holder["data"]

        self.file_sigs[rel] = sig
        payload = self._cache.lookup(rel, sig, read, self._dep_signature)
        if payload is not None:
            self.file_deps[rel] = dict(self._cache.entries[rel][2])
            self.stats["cached"] += 1
            fi = file_index_from_payload(rel, payload)
            self._apply_selection(fi)
            return fi, None
        data, error = read_source(path) if "data" not in holder else (holder["data"], None)
        if data is None:
            assert error is not None
            error.path = rel
            return FileIndex(rel, errors=[error]), None
        return None, (path, rel, sig, data)

    def _parse_job(self, job: tuple[Path, RelPath, tuple[int, int] | None, bytes]) -> tuple[dict[str, Any], Any]:
        _path, rel, _sig, data = job
        fi, deps = self._discover(rel, data)
        return deps, file_index_to_payload(fi)

    def _discover(self, rel: RelPath, data: bytes, tree: ast.Module | None = None, memo: DiscoveryMemo | None = None) -> tuple[FileIndex, dict[str, tuple[int, int] | None]]:
        ctx = _Context(self)
        try:
            fi = discover(rel, data, self.options, ctx, tree=tree, memo=memo)
        except RecursionError:
            fi = FileIndex(rel, errors=[FileError(rel, "too deeply nested to index statically", None, "syntax")])
        finally:
            if memo is not None:
                memo.end()
        return fi, ctx.deps

    def dependencies(self) -> list[tuple[str, bool, Sig]]:
        """Every path the last build depended on, with its signature then: (path, is_folder, sig).

        Config candidates, walked folders, indexed files, conftests and the
        files those depended on: if none of these changed, neither did the index.
        """
        out: list[tuple[str, bool, Sig]] = []
        for path in self.cfg.consulted:
            out.append((str(path), False, signature(path)))
        for folder, mtime in self.dir_mtimes.items():
            out.append((str(folder), True, mtime))
            conftest = folder / "conftest.py"
            out.append((str(conftest), False, signature(conftest)))
        for rel, sig in self.file_sigs.items():
            out.append((str(self.root / rel), False, sig))
            for dep, dsig in self.file_deps.get(rel, {}).items():
                out.append((str(self.root / dep), False, dsig))
        return out

    # -- incremental -------------------------------------------------------------
    def update_file(self, path: Path | str, text: str | bytes | None = None) -> FileIndex:
        """Re-index one file (from an editor buffer if `text` is given, else from disk)."""
        path = Path(os.path.abspath(self.root / path))
        rel = relpath(path, self.root)
        self._buffers.forget(keep=rel if text is not None else None)  # what it keeps may read names another file just changed
        self._scans.pop(path, None)
        self.last_changed = [rel]
        if path.name == "conftest.py":
            self._conftests.pop(path.parent, None)
            self._conftest(path.parent, None if text is None else _as_bytes(text))
            # Fixtures and collect_ignore of a conftest reach every file below it.
            below = [r for r in self.files if r != rel and (self.root / r).is_relative_to(path.parent)]
            for other in below:
                self._reindex_from_disk(other)
            self.last_changed += below
        if rel not in self.files and not self.is_test_file(path):
            return FileIndex(rel)
        if text is None:
            data, error = read_source(path)
            if data is None:
                assert error is not None
                error.path = rel
                fi = FileIndex(rel, errors=[error])
                self.files[rel] = fi
                return fi
        else:
            data = _as_bytes(text)
        tree = self._buffers.parse(rel, text)
        previous = self.files.get(rel)
        moved = self._buffers.moved(rel, previous) if tree is not None else None
        if moved is not None:
            self.files[rel] = moved
            return moved
        memo = self._buffers.memo(rel, tree)
        fi, _deps = self._discover(rel, data, tree, memo)
        if fi.errors and not fi.items and previous is not None and previous.items and any(e.kind == "syntax" for e in fi.errors):
            # Keep the last good items while the user is typing; report the error with them.
            fi = FileIndex(rel, previous.items, previous.collectors, previous.fixtures, fi.errors, stale=True)
        self._apply_selection(fi)
        self.files[rel] = fi
        self._buffers.discovered(fi, memo)
        return fi

    def is_test_file(self, path: Path) -> bool:
        """Would pytest collect this file when run on the workspace (its name, folders, ignores)?"""
        walker = Walker(self.cfg, self._conftest_ignores)
        if path.suffix != ".py" or not walker.matches_python_files(path) or walker.ignored(path, False):
            return False
        roots = self._roots or [self.root]
        for parent in path.parents:
            if parent in roots:
                return True
            if walker.ignored(parent, True):
                return False
        return False

    def _reindex_from_disk(self, rel: RelPath) -> None:
        data, error = read_source(self.root / rel)
        if data is None:
            return
        fi, _deps = self._discover(rel, data)
        self._apply_selection(fi)
        self.files[rel] = fi

    def remove_file(self, path: Path | str) -> None:
        self._buffers.forget()
        rel = relpath(Path(os.path.abspath(self.root / path)), self.root)
        self.files.pop(rel, None)

    # -- selection -----------------------------------------------------------------
    def _compile_selection(self) -> tuple[Predicate | None, Predicate | None]:
        keyword: Predicate | None = None
        mark: Predicate | None = None
        try:
            if self.cfg.keyword:
                keyword = compile_expression(self.cfg.keyword)
            if self.cfg.markexpr:
                mark = compile_expression(self.cfg.markexpr)
        except ExpressionError as exc:
            self.config_errors.append(f"addopts: {exc}")
        return keyword, mark

    def _apply_selection(self, fi: FileIndex) -> None:
        keyword, mark = self._deselect
        deselect = tuple(self.cfg.deselect)
        if not (keyword or mark or deselect):
            return
        for item in fi.items:
            item.deselected = self.is_deselected(item)

    def is_deselected(self, item: TestItem) -> bool:
        keyword, mark = self._deselect
        if self.cfg.deselect and item.nodeid.startswith(tuple(self.cfg.deselect)):
            return True
        if keyword is not None:
            parts = item.path.split("/")
            names = parts[:-1] + [parts[-1]] + item.nodeid.split("::")[1:-1] + [item.name] + item.markers
            if not keyword(keyword_matcher(names)):
                return True
        if mark is not None and not mark(mark_matcher(item.markers)):
            return True
        return False

    # -- queries -------------------------------------------------------------------
    def items(self, include_deselected: bool = True) -> list[TestItem]:
        out: list[TestItem] = []
        filters = tuple(self.node_filters)
        for fi in self.files.values():
            for item in fi.items:
                if item.deselected and not include_deselected:
                    continue
                if filters and not any(item.nodeid == f or item.nodeid.startswith((f + "::", f + "[")) for f in filters):
                    continue
                out.append(item)
        return out

    def errors(self) -> list[FileError]:
        out = list(self.walk_errors)
        for fi in self.files.values():
            out.extend(fi.errors)
        for conf in self._conftests.values():
            if conf is not None and conf.error is not None:
                out.append(conf.error)
        out.extend(FileError(relpath(self.cfg.inifile or self.root, self.root), msg, None, "config") for msg in self.config_errors)
        return out

    # -- conftests -------------------------------------------------------------------
    def _conftest(self, folder: Path, text: bytes | None = None) -> _Conftest | None:
        if folder in self._conftests and text is None:
            return self._conftests[folder]
        path = folder / "conftest.py"
        conf: _Conftest | None = None
        if text is not None or path.is_file():
            rel = relpath(path, self.root)
            data, error = (text, None) if text is not None else read_source(path)
            conf = _Conftest(path, None)
            if data is None:
                conf.error = error
            else:
                tree, perr = parse(rel, data)
                if tree is None:
                    conf.error = perr
                else:
                    conf.scan = scan_module(tree)
                    attach_resolver(conf.scan.env, rel, _Context(self))
                    conf.ignore = [folder / p for p in conf.scan.collect_ignore]
                    conf.ignore_glob = [str(folder / g) for g in conf.scan.collect_ignore_glob]
                    for binding in conf.scan.bindings.values():
                        node = binding.node
                        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and any(is_fixture_decorator(d) for d in node.decorator_list):
                            conf.fixtures.append(fixture_from_def(node, rel, conf.scan.env, None, self.cfg.escape_ids))
        self._conftests[folder] = conf
        return conf

    def conftest_chain(self, folder: Path) -> list[Path]:
        """Folders whose conftest.py applies to `folder`, outermost first."""
        floor = self.cfg.confcutdir or self.root
        chain: list[Path] = []
        for parent in (folder, *folder.parents):
            chain.append(parent)
            if parent == floor or parent == self.root:
                break
        else:
            return []
        return list(reversed(chain))

    def _conftest_ignores(self, folder: Path) -> tuple[list[Path], list[str]]:
        paths: list[Path] = []
        globs: list[str] = []
        for d in self.conftest_chain(folder):
            conf = self._conftest(d)
            if conf is not None:
                paths.extend(conf.ignore)
                globs.extend(conf.ignore_glob)
        return paths, globs

    def conftest_fixtures(self, rel: RelPath) -> tuple[FixtureLookup, list[Path]]:
        folder = (self.root / rel).parent
        lookup: FixtureLookup = {}
        files: list[Path] = []
        for d in self.conftest_chain(folder):
            files.append(d / "conftest.py")
            conf = self._conftest(d)
            if conf is None:
                continue
            for fx in conf.fixtures:
                lookup.setdefault(fx.name, []).append(fx)
        return lookup, files

    def fixtures(self) -> list[FixtureDef]:
        out: list[FixtureDef] = []
        for conf in self._conftests.values():
            if conf is not None:
                out.extend(conf.fixtures)
        for fi in self.files.values():
            out.extend(fi.fixtures)
        return out

    # -- imports -----------------------------------------------------------------------
    def module_scan(self, path: Path) -> ModuleScan | None:
        sig = signature(path)
        cached = self._scans.get(path)
        if cached is not None and cached[0] == sig:
            return cached[1]
        data, _error = read_source(path)
        scan = None
        if data is not None:
            tree, _perr = parse(relpath(path, self.root), data)
            if tree is not None:
                scan = scan_module(tree)
        self._scans[path] = (sig, scan)
        return scan

    def find_module(self, importer: RelPath, module: str | None, level: int) -> Path | None:
        importer_dir = (self.root / importer).parent
        parts = module.split(".") if module else []
        if level > 0:
            base = importer_dir
            for _ in range(level - 1):
                base = base.parent
            roots = [base]
        else:
            roots = [_basedir(importer_dir), self.root, self.root / "src", importer_dir]
        for root in roots:
            candidate = root.joinpath(*parts)
            if candidate.with_suffix(".py").is_file() and parts:
                return candidate.with_suffix(".py")
            if (candidate / "__init__.py").is_file():
                return candidate / "__init__.py"
        return None

    def _dep_signature(self, rel: str) -> tuple[int, int] | None:
        return signature(self.root / rel)


def _as_bytes(text: str | bytes) -> bytes:
    return text.encode("utf-8") if isinstance(text, str) else text


def _basedir(folder: Path) -> Path:
    """The first folder upwards that is not a package: what pytest puts on sys.path (prepend mode)."""
    while (folder / "__init__.py").is_file() and folder.parent != folder:
        folder = folder.parent
    return folder


class _Context:
    """Discovery's window on the workspace for one file; records what the file depended on."""

    def __init__(self, index: WorkspaceIndex) -> None:
        self.index = index
        self.deps: dict[str, tuple[int, int] | None] = {}

    def _dep(self, path: Path) -> None:
        self.deps[relpath(path, self.index.root)] = signature(path)

    def resolve(self, importer: RelPath, module: str | None, level: int, name: str | None) -> tuple[RelPath, ModuleScan] | None:
        path = self.index.find_module(importer, module, level)
        if path is None and module is None and name is not None:
            path = self.index.find_module(importer, name, level)
        if path is None:
            return None
        self._dep(path)
        scan = self.index.module_scan(path)
        if scan is None:
            return None
        return relpath(path, self.index.root), scan

    def conftest_fixtures(self, path: RelPath) -> FixtureLookup:
        lookup, files = self.index.conftest_fixtures(path)
        for f in files:
            self._dep(f)
        return lookup
