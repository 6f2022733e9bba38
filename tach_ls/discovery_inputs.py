"""What static discovery takes: collection options, the world outside one file, and the file's bytes parsed.

`discovery_ast` indexes one module from these; the index supplies the
`Context` (other workspace modules, conftest fixtures), and `NoContext`
stands in where a file is indexed alone.
"""

from __future__ import annotations

import ast
import fnmatch
from dataclasses import dataclass
from typing import Protocol

from tach_ls.fixtures_static import FixtureLookup
from tach_ls.model import FileError, RelPath
from tach_ls.module_scan import ModuleScan
from tach_ls.static_eval import Env

MAX_FILE_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class CollectOptions:
    python_functions: tuple[str, ...] = ("test",)
    python_classes: tuple[str, ...] = ("Test",)
    collect_imported_tests: bool = True
    escape_ids: bool = True


class Context(Protocol):
    """What discovery needs from outside one file."""

    def resolve(self, importer: RelPath, module: str | None, level: int, name: str | None) -> tuple[RelPath, ModuleScan] | None:
        """The scanned module that `from MODULE import NAME` (relative to `importer`) refers to."""

    def conftest_fixtures(self, path: RelPath) -> FixtureLookup:
        """Fixtures visible to `path` from conftest.py files, closest last."""


def attach_resolver(env: Env, importer: RelPath, context: Context) -> None:
    """Let `env` evaluate names imported from other workspace modules (found through `context`)."""

    def resolver(module: str | None, name: str | None, level: int) -> Env | None:
        found = context.resolve(importer, module, level, name)
        if found is None:
            return None
        other_path, other = found
        if other.env.resolver is None:
            attach_resolver(other.env, other_path, context)
        return other.env

    env.resolver = resolver


class NoContext:
    def resolve(self, importer: RelPath, module: str | None, level: int, name: str | None) -> tuple[RelPath, ModuleScan] | None:
        return None

    def conftest_fixtures(self, path: RelPath) -> FixtureLookup:
        return {}


def matches_name(name: str, patterns: tuple[str, ...]) -> bool:
    """pytest's prefix-or-glob match for python_functions / python_classes."""
    for pattern in patterns:
        if name.startswith(pattern):
            return True
        if ("*" in pattern or "?" in pattern or "[" in pattern) and fnmatch.fnmatch(name, pattern):
            return True
    return False


def parse(relpath: RelPath, source: bytes) -> tuple[ast.Module | None, FileError | None]:
    """Parse bytes as Python would (BOM, coding cookie, CRLF); a clear error instead of an exception."""
    if len(source) > MAX_FILE_BYTES:
        mb = len(source) / 1e6
        return None, FileError(relpath, f"file too large to index statically ({mb:.1f} MB > {MAX_FILE_BYTES // 10**6} MB)", None, "too-large")
    try:
        return ast.parse(source, filename=relpath), None
    except SyntaxError as exc:
        kind = "encoding" if "codec" in str(exc.msg) or "decode" in str(exc.msg) else "syntax"
        return None, FileError(relpath, f"{type(exc).__name__}: {exc.msg}", exc.lineno, kind)
    except (ValueError, UnicodeDecodeError) as exc:  # null bytes, bad encoding cookie
        return None, FileError(relpath, f"cannot parse: {exc}", None, "encoding")
    except (RecursionError, MemoryError):
        return None, FileError(relpath, "expression nesting too deep to parse", None, "syntax")
