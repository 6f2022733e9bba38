"""tach-ls's own settings: defaults, the editor's (initializationOptions and
workspace/didChangeConfiguration), and `[tool.tach-ls]` in pyproject.toml.

Precedence: defaults < editor < project. What a project writes in its
pyproject.toml is what the project fixes (an isolation level its tests need,
say), so it wins over a user's editor setting. Invalid values are reported
and ignored, never fatal.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

RUN_ON_SAVE = ("off", "file", "affected")
ISOLATION = ("off", "auto", "strict")


@dataclass(frozen=True)
class Settings:
    python: str | None = None
    runOnSave: str = "off"  # noqa: N815 - the contract's spelling
    coverage: bool = False
    isolation: str = "auto"
    isolationScope: str = "batch"  # noqa: N815 - the contract's spelling
    workers: int | None = None
    timeout: float = 300.0


def _check(name: str, value: Any) -> Any:
    if name == "python":
        if value is None or isinstance(value, str):
            return value or None
    elif name == "runOnSave":
        if value in RUN_ON_SAVE:
            return value
    elif name == "isolation":
        if value in ISOLATION:
            return value
    elif name == "isolationScope":
        if value in ("batch", "test"):
            return value
    elif name == "coverage":
        if isinstance(value, bool):
            return value
    elif name == "workers":
        if value is None or (isinstance(value, int) and not isinstance(value, bool) and value > 0):
            return value
    elif name == "timeout":
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return float(value)
    raise ValueError(f"invalid value for {name}: {value!r}")


_ALIASES = {"run_on_save": "runOnSave", "run-on-save": "runOnSave", "isolation_scope": "isolationScope", "isolation-scope": "isolationScope"}


def merge(base: Settings, values: dict[str, Any] | None, source: str) -> tuple[Settings, list[str]]:
    """Apply `values` (a dict from the editor or pyproject) over `base`; (settings, warnings)."""
    if not isinstance(values, dict):
        return base, ([] if values is None else [f"{source}: settings must be an object, got {type(values).__name__}"])
    known = {f.name for f in fields(Settings)}
    changes: dict[str, Any] = {}
    warnings: list[str] = []
    for key, value in values.items():
        name = _ALIASES.get(key, key)
        if name not in known:
            continue  # other extensions' keys may share the section
        try:
            changes[name] = _check(name, value)
        except ValueError as exc:
            warnings.append(f"{source}: {exc}")
    return replace(base, **changes), warnings


def from_pyproject(root: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    section = data.get("tool", {}).get("tach-ls", {})
    return section if isinstance(section, dict) else {}


def effective(editor: dict[str, Any] | None, root: Path) -> tuple[Settings, list[str]]:
    settings, warnings = merge(Settings(), editor, "editor settings")
    settings, more = merge(settings, from_pyproject(root), f"{root / 'pyproject.toml'} [tool.tach-ls]")
    return settings, warnings + more
