"""Which files pytest would collect: its directory walk and ignore rules, statically.

Order and rules follow pytest's `Dir`/`Package` collectors and
`pytest_ignore_collect`: entries sorted by name, `__pycache__`, `--ignore`,
`--ignore-glob`, conftest `collect_ignore`/`collect_ignore_glob`,
virtualenvs, `norecursedirs` (for folders), `python_files` (unless the file was
named explicitly). Odd entries (FIFOs, symlink loops, unreadable folders)
become per-path errors instead of exceptions or hangs.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tach_ls.config import PytestConfig
from tach_ls.model import FileError

ConftestIgnores = Callable[[Path], tuple[list[Path], list[str]]]  # dir -> (collect_ignore paths, globs)


def fnmatch_ex(pattern: str, path: Path) -> bool:
    """pytest's fnmatch_ex: a pattern without "/" matches the basename, else the whole path."""
    if os.sep not in pattern:
        return fnmatch.fnmatch(path.name, pattern)
    name = str(path)
    if path.is_absolute() and not os.path.isabs(pattern):
        pattern = f"*{os.sep}{pattern}"
    return fnmatch.fnmatch(name, pattern)


def in_venv(path: Path) -> bool:
    try:
        return (path / "pyvenv.cfg").is_file() or (path / "conda-meta" / "history").is_file()
    except OSError:
        return False


@dataclass
class WalkResult:
    files: list[Path] = field(default_factory=list)
    errors: list[tuple[Path, str, str]] = field(default_factory=list)  # (path, message, kind)
    dirs: list[Path] = field(default_factory=list)  # every folder visited (for the watcher and conftests)
    dir_mtimes: dict[Path, int] = field(default_factory=dict)  # taken before listing each folder


class Walker:
    def __init__(self, cfg: PytestConfig, conftest_ignores: ConftestIgnores) -> None:
        self.cfg = cfg
        self.conftest_ignores = conftest_ignores
        self.result = WalkResult()
        self._seen_files: set[Path] = set()
        self._active_dirs: set[tuple[int, int]] = set()

    def ignored(self, path: Path, is_dir: bool) -> bool:
        if path.name == "__pycache__":
            return True
        paths, globs = self.conftest_ignores(path.parent)
        if path in paths or path in self.cfg.ignore:
            return True
        text = str(path)
        if any(fnmatch.fnmatch(text, g) for g in globs) or any(fnmatch.fnmatch(text, g) for g in self.cfg.ignore_glob):
            return True
        if not self.cfg.collect_in_virtualenv and is_dir and in_venv(path):
            return True
        if is_dir and any(fnmatch_ex(p, path) for p in self.cfg.norecursedirs):
            return True
        return False

    def matches_python_files(self, path: Path) -> bool:
        return any(fnmatch_ex(p, path) for p in self.cfg.python_files)

    def add_arg(self, path: Path) -> None:
        """An explicit argument: a file is taken if it is .py, a folder is walked."""
        try:
            st = os.stat(path)
        except OSError as exc:
            self.result.errors.append((path, f"cannot read: {exc.strerror or exc}", "io"))
            return
        if stat.S_ISDIR(st.st_mode):
            self._walk_dir(path)
        elif stat.S_ISREG(st.st_mode):
            if path.suffix == ".py":
                self._add_file(path)
        else:
            self.result.errors.append((path, "not a regular file (FIFO, socket or device): skipped", "not-a-file"))

    def _add_file(self, path: Path) -> None:
        if path not in self._seen_files:
            self._seen_files.add(path)
            self.result.files.append(path)

    def _walk_dir(self, path: Path) -> None:
        try:
            st = os.stat(path)
        except OSError as exc:
            self.result.errors.append((path, f"cannot read folder: {exc.strerror or exc}", "io"))
            return
        key = (st.st_dev, st.st_ino)
        if key in self._active_dirs:
            self.result.errors.append((path, "symlink loop: this folder contains itself; not searched again", "symlink-loop"))
            return
        self._active_dirs.add(key)
        self.result.dirs.append(path)
        self.result.dir_mtimes[path] = st.st_mtime_ns
        try:
            entries = sorted(os.scandir(path), key=lambda e: e.name)
        except OSError as exc:
            self.result.errors.append((path, f"cannot list folder: {exc.strerror or exc}", "io"))
            self._active_dirs.discard(key)
            return
        for entry in entries:
            child = Path(entry.path)
            try:
                is_dir = entry.is_dir()
                is_file = entry.is_file()
            except OSError as exc:
                if child.suffix == ".py":
                    self.result.errors.append((child, f"cannot read: {exc.strerror or exc}", "io"))
                continue
            if is_dir:
                if self.ignored(child, True):
                    continue
                if child.suffix == ".py" and self.matches_python_files(child):
                    self.result.errors.append((child, "a folder named like a test module: searched as a folder", "not-a-file"))
                self._walk_dir(child)
            elif is_file:
                if child.suffix != ".py" or self.ignored(child, False):
                    continue
                if self.matches_python_files(child):
                    self._add_file(child)
            elif child.suffix == ".py" and self.matches_python_files(child) and not self.ignored(child, False):
                if entry.is_symlink() and not os.path.exists(child):
                    self.result.errors.append((child, "broken symlink: its target does not exist", "io"))
                else:
                    self.result.errors.append((child, "not a regular file (FIFO, socket or device): skipped", "not-a-file"))
        self._active_dirs.discard(key)


def walk(cfg: PytestConfig, args: list[Path], conftest_ignores: ConftestIgnores) -> WalkResult:
    walker = Walker(cfg, conftest_ignores)
    for arg in args:
        walker.add_arg(arg)
    return walker.result


def to_file_errors(result: WalkResult, rootdir: Path) -> list[FileError]:
    out = []
    for path, message, kind in result.errors:
        out.append(FileError(relpath(path, rootdir), message, None, kind))
    return out


def relpath(path: Path, rootdir: Path) -> str:
    """The path as pytest writes it in node ids: relative to rootdir, with "/"."""
    try:
        rel = path.relative_to(rootdir)
    except ValueError:
        rel = Path(os.path.relpath(path, rootdir))
    return rel.as_posix()
