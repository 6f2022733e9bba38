"""Impact analysis as the CLI and the server use it: record runs, select affected tests, explain.

Glue between the engine's results and the store: a result carries (when
the run collected them) its executed lines per file, the workspace files it
opened and the endpoints it connected to; without coverage a test is
recorded as incomplete, which keeps it selected (an unknown dependency is
never trusted to exclude a test).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tach_ls.cachedir import cache_dir
from tach_ls.impact import ImpactStore, NetworkPolicy, Selected, TestRecord
from tach_ls.impact_env import env_key
from tach_ls.settings import from_pyproject

STORE_NAME = "impact.sqlite3"


def open_store(root: Path) -> ImpactStore:
    return ImpactStore(cache_dir(root) / STORE_NAME)


def environment(root: Path, python: str, inifile: Path | None, version: str | None = None) -> str:
    return env_key(root, python, version or sys.version.split()[0], inifile)


def policy(root: Path) -> NetworkPolicy:
    section = from_pyproject(root).get("network", {})
    return NetworkPolicy(dict(section) if isinstance(section, dict) else {})


def to_record(result: Any) -> TestRecord:
    coverage = getattr(result, "coverage", None)
    lines = {f: set(ls) for f, ls in coverage.items()} if isinstance(coverage, dict) else {}
    complete = isinstance(coverage, dict) and not getattr(result, "coverage_partial", False)
    return TestRecord(
        nodeid=result.nodeid,
        outcome=getattr(result.status, "value", str(result.status)),
        duration_ms=float(getattr(result, "duration_ms", 0.0)),
        lines=lines,
        opened=set(getattr(result, "opened", None) or ()),
        endpoints=set(getattr(result, "endpoints", None) or ()),
        spawns=bool(getattr(result, "spawned", False)),
        complete=complete,
    )


def record_run(store: ImpactStore, root: Path, results: Iterable[Any], env: str) -> None:
    records = [to_record(r) for r in results]
    if records:
        store.record(root, records, env)


@dataclass
class Selection:
    selected: list[Selected]
    total: int
    changed: list[str]

    def explain(self) -> str:
        lines = [f"{len(self.selected)} of {self.total} tests selected; changed: {', '.join(self.changed) or 'nothing'}"]
        lines += [f"  {s.nodeid}  <- {s.reason}" for s in self.selected]
        return "\n".join(lines)


def _guessed(item: Any) -> bool:
    return item is not None and getattr(item, "dynamic", False) and getattr(item, "params_id", None) is not None


def _base(nodeid: str) -> str:
    return nodeid.split("[", 1)[0]


def runnable_ids(selected: list[Selected], items: Mapping[str, Any]) -> list[str]:
    """Node ids to hand the engine: a case whose id is only guessed statically (`dynamic`) runs
    as its whole function, so real collection's ids are covered and no failure can hide."""
    guessed = {_base(n) for n, item in items.items() if _guessed(item)}
    out = [_base(s.nodeid) if _base(s.nodeid) in guessed else s.nodeid for s in selected]
    return list(dict.fromkeys(out))


def with_recorded_cases(all_tests: list[str], items: Mapping[str, Any], known: Iterable[str]) -> list[str]:
    """`all_tests` where each statically guessed case id gives way to the real ids recorded for its
    function (a run records pytest's ids, which the static index could not compute)."""
    guessed = {_base(n) for n in all_tests if _guessed(items.get(n))}
    if not guessed:
        return all_tests
    recorded: dict[str, list[str]] = {}
    for nodeid in known:
        if "[" in nodeid and _base(nodeid) in guessed:
            recorded.setdefault(_base(nodeid), []).append(nodeid)
    out: list[str] = []
    for nodeid in all_tests:
        base = _base(nodeid)
        out.extend(recorded[base] if _guessed(items.get(nodeid)) and base in recorded else [nodeid])
    return list(dict.fromkeys(out))


def select_affected(
    store: ImpactStore,
    root: Path,
    all_tests: list[str],
    env: str,
    changed: list[str] | None = None,
    texts: Mapping[str, bytes] | None = None,
    items: Mapping[str, Any] | None = None,
) -> Selection:
    """Tests affected by `changed` (default: files that differ from the last recorded run).

    With `items` (node id -> index item), guessed parametrize ids are matched to the recorded
    real ids of their function (see `with_recorded_cases`)."""
    if changed is None:
        changed = store.changed_files(root)
    if items:
        all_tests = with_recorded_cases(all_tests, items, store.known_tests())
    selected = store.select(root, changed, all_tests, env, policy(root), texts)
    return Selection(selected, len(all_tests), changed)
