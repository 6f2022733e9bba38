"""Discovery benchmark: tach-ls's static index against pytest's collection, on real suites.

For each suite prepared by `suites.py` (Flask, Click, seaborn's whole `tests`):

1. node-id agreement between `tach-ls list ARGS` and `pytest --collect-only -q ARGS`
   (matched / missing / extra, agreement = matched / pytest's total), with the
   disagreements grouped by test function and a hint of why;
2. wall time of both as whole processes, side by side in one run: pytest (after
   one untimed warm-up, so its .pyc files exist), `tach-ls list` with a cold
   cache (`.tach-ls/` deleted first) and with a warm one, and `python -c pass`
   (the startup floor); medians and ratios;
3. the time to re-index one edited file in-process, if `tach_ls.index` offers
   `WorkspaceIndex(root, args, use_cache=False).build()` and `.update_file(path, text)`.

Run from the repository root: `python bench/discovery.py [flask click seaborn] [--repeat N] [--json FILE]`.
It prints targets next to the numbers and never asserts. Stdlib only.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from suites import SUITES, Suite, prepare, prepare_tach

REPO_ROOT = Path(__file__).resolve().parent.parent
TARGET_AGREEMENT = 99.0  # percent
TARGET_COLD = 20.0  # pytest time / tach-ls cold-cache time
TARGET_WARM = 50.0  # pytest time / tach-ls warm-cache time
GROUPS_SHOWN = 15
EXAMPLES_SHOWN = 3

_SUMMARY_RE = re.compile(r"^(?:no tests collected|(\d+)(?:/(\d+))? tests? collected)")
_DESELECTED_RE = re.compile(r"\((\d+) deselected\)")
_ERRORS_RE = re.compile(r"(\d+) errors?")


# ---------------------------------------------------------------- running commands


@dataclass
class Output:
    """One finished command."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float


def run(cmd: Sequence[str], suite: Suite, extra_env: dict[str, str] | None = None) -> Output:
    """Run `cmd` in the suite's root with the suite's environment (no PYTHONDONTWRITEBYTECODE)."""
    env = {**suite.env, **(extra_env or {})}
    started = time.perf_counter()
    proc = subprocess.run(list(cmd), cwd=suite.root, env=env, capture_output=True, check=False)
    seconds = time.perf_counter() - started
    return Output(proc.returncode, _decode(proc.stdout), _decode(proc.stderr), seconds)


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def pytest_command(suite: Suite) -> list[str]:
    return [str(suite.python), "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *suite.discovery_args]


def tach_command() -> tuple[list[str], dict[str, str]]:
    """The `tach-ls` console script of the bench's own tach-ls venv (see `suites.prepare_tach`)."""
    return prepare_tach(quiet=True).cli(), {}


def tach_interpreter() -> str:
    """The interpreter `tach-ls` runs with: the startup floor no whole `tach-ls` process beats."""
    return str(prepare_tach(quiet=True).python)


def tach_list_command(suite: Suite, *flags: str) -> tuple[list[str], dict[str, str]]:
    base, env = tach_command()
    return [*base, "list", *flags, *suite.discovery_args], env


def clear_tach_cache(suite: Suite) -> None:
    """Both caches: the per-file index in the workspace and the warm listing's manifest."""
    shutil.rmtree(suite.root / ".tach-ls", ignore_errors=True)
    cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    shutil.rmtree(cache_home / "tach-ls" / "list", ignore_errors=True)


# ---------------------------------------------------------------- pytest's side


@dataclass
class Collection:
    """What `pytest --collect-only -q` printed, parsed."""

    nodeids: list[str]
    summary: str  # pytest's closing line, e.g. "2459/33459 tests collected (31000 deselected) in 1.5s"
    selected: int | None
    total: int | None
    deselected: int
    errors: list[str]  # "ERROR path - reason" lines of the short summary
    returncode: int


def parse_collect_only(stdout: str, returncode: int) -> Collection:
    """Node ids are the lines before the first blank line; the rest is errors, warnings, summary."""
    lines = stdout.splitlines()
    nodeids: list[str] = []
    for line in lines:
        if not line.strip():
            break
        if "::" in line and not line.startswith(("=", "_", " ", "!")):
            nodeids.append(line)
    errors = [line for line in lines if line.startswith("ERROR ")]
    summary = next((line for line in reversed(lines) if _SUMMARY_RE.match(line.strip())), "")
    selected = total = None
    match = _SUMMARY_RE.match(summary.strip())
    if match and match.group(1):
        selected = int(match.group(1))
        total = int(match.group(2) or match.group(1))
    elif match:
        selected = total = 0
    deselected = _DESELECTED_RE.search(summary)
    error_count = _ERRORS_RE.search(summary.split(" in ")[0])
    if error_count and not errors:
        errors = [f"{error_count.group(1)} collection error(s); see pytest's output"]
    return Collection(
        nodeids=nodeids,
        summary=summary.strip() or "(no summary line)",
        selected=selected,
        total=total,
        deselected=int(deselected.group(1)) if deselected else 0,
        errors=errors,
        returncode=returncode,
    )


def collect_with_pytest(suite: Suite) -> Collection:
    out = run(pytest_command(suite), suite)
    collection = parse_collect_only(out.stdout, out.returncode)
    if collection.selected is not None and collection.selected != len(collection.nodeids):
        collection.errors.append(
            f"parsed {len(collection.nodeids)} node ids but pytest says {collection.selected} collected"
        )
    return collection


# ---------------------------------------------------------------- tach-ls's side


@dataclass
class TachListing:
    """What `tach-ls list` printed (plain: the contract) and `--json` (for lines, kinds, errors)."""

    nodeids: list[str]
    returncode: int
    stderr: str
    items: dict[str, dict[str, Any]] = field(default_factory=dict)  # node id -> JSON item
    errors: list[Any] = field(default_factory=list)


def list_with_tach(suite: Suite) -> TachListing:
    cmd, env = tach_list_command(suite, "--no-cache")
    out = run(cmd, suite, env)
    nodeids = [line for line in out.stdout.splitlines() if line.strip()]
    listing = TachListing(nodeids=nodeids, returncode=out.returncode, stderr=out.stderr.strip())
    cmd, env = tach_list_command(suite, "--no-cache", "--json")
    out = run(cmd, suite, env)
    try:
        doc = json.loads(out.stdout)
        listing.items = {item["nodeid"]: item for item in doc.get("tests", [])}
        listing.errors = list(doc.get("errors", []))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        listing.errors = [f"tach-ls list --json gave no usable JSON ({exc}); exit {out.returncode}"]
    return listing


# ---------------------------------------------------------------- agreement


def function_key(nodeid: str) -> str:
    """The node id without its parametrization: `f.py::C::test_x[1-a]` -> `f.py::C::test_x`."""
    start = nodeid.find("::")
    bracket = nodeid.find("[", max(start, 0))
    return nodeid[:bracket] if bracket >= 0 else nodeid


def params_of(nodeid: str, function: str) -> str:
    """The `[...]` part of a node id of `function`, or "(no params)"."""
    return nodeid[len(function) :] or "(no params)"


def file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


@dataclass
class Group:
    """Disagreeing node ids of one test function."""

    function: str
    count: int
    hint: str
    first: str  # the first disagreeing node id
    examples: list[str]  # the parametrization part, or the whole id when unparametrized
    other_side: list[str]  # ids of the same function on the other side, if any


def group_disagreements(ours: Iterable[str], theirs: Sequence[str], other_name: str) -> list[Group]:
    """Group `ours` (ids absent from the other side) by function, with a hint of the cause."""
    other_by_function: dict[str, list[str]] = defaultdict(list)
    for nodeid in theirs:
        other_by_function[function_key(nodeid)].append(nodeid)
    other_files = {file_of(nodeid) for nodeid in theirs}
    by_function: dict[str, list[str]] = defaultdict(list)
    for nodeid in ours:
        by_function[function_key(nodeid)].append(nodeid)
    groups = []
    for function, nodeids in by_function.items():
        others = other_by_function.get(function, [])
        if others == [function]:
            hint = f"{other_name} lists it without params"
        elif others and nodeids == [function]:
            hint = f"{other_name} has it parametrized"
        elif others:
            hint = f"{other_name} has other ids for it"
        elif file_of(function) in other_files:
            hint = f"{other_name} has the file, not this function"
        else:
            hint = f"{other_name} has nothing of this file"
        examples = [params_of(nodeid, function) for nodeid in sorted(nodeids)[:EXAMPLES_SHOWN]]
        shown_others = [params_of(nodeid, function) for nodeid in sorted(others)[:EXAMPLES_SHOWN]]
        groups.append(Group(function, len(nodeids), hint, min(nodeids), examples, shown_others))
    groups.sort(key=lambda g: (-g.count, g.function))
    return groups


@dataclass
class Agreement:
    pytest_total: int
    tach_total: int
    matched: int
    missing: int  # in pytest, not in tach-ls
    extra: int  # in tach-ls, not in pytest
    agreement_pct: float
    tach_duplicates: int
    missing_groups: list[Group]
    extra_groups: list[Group]


def compare(pytest_ids: Sequence[str], tach_ids: Sequence[str]) -> Agreement:
    expected, got = set(pytest_ids), set(tach_ids)
    missing = sorted(expected - got)
    extra = sorted(got - expected)
    matched = len(expected & got)
    return Agreement(
        pytest_total=len(expected),
        tach_total=len(got),
        matched=matched,
        missing=len(missing),
        extra=len(extra),
        agreement_pct=100.0 * matched / len(expected) if expected else 0.0,
        tach_duplicates=len(tach_ids) - len(got),
        missing_groups=group_disagreements(missing, tach_ids, "tach-ls"),
        extra_groups=group_disagreements(extra, pytest_ids, "pytest"),
    )


# ---------------------------------------------------------------- timing


@dataclass
class Timing:
    pytest_s: float  # medians, seconds
    tach_cold_s: float
    tach_warm_s: float
    cold_ratio: float
    warm_ratio: float
    startup_floor_s: float  # `python -c pass` with tach-ls's interpreter: no whole process beats it
    repeat: int
    samples: dict[str, list[float]]
    failures: list[str]


def time_discovery(suite: Suite, repeat: int) -> Timing:
    """pytest, tach-ls cold and warm, and the startup floor, interleaved in each round so drift hits all.

    A timed run whose exit code differs from its untimed warm-up's (e.g. tach-ls
    broken mid-edit) is left out of the medians and reported.
    """
    tach_cmd, tach_env = tach_list_command(suite)
    rounds: tuple[tuple[str, list[str], dict[str, str] | None], ...] = (
        ("pytest", pytest_command(suite), None),
        ("tach_cold", tach_cmd, tach_env),
        ("tach_warm", tach_cmd, tach_env),
        ("startup_floor", [tach_interpreter(), "-c", "pass"], None),
    )
    # Untimed warm-ups: .pyc files of pytest, the suite and tach-ls, the OS cache; the expected exit codes.
    expected = {key: run(cmd, suite, env).returncode for key, cmd, env in rounds}
    samples: dict[str, list[float]] = {key: [] for key, _cmd, _env in rounds}
    failures: list[str] = []
    for _ in range(repeat):
        for key, cmd, env in rounds:
            if key == "tach_cold":
                clear_tach_cache(suite)
            out = run(cmd, suite, env)
            if out.returncode == expected[key]:
                samples[key].append(out.seconds)
            elif len(failures) < 6:
                failures.append(
                    f"{key} exited {out.returncode} (warm-up: {expected[key]}), left out: {out.stderr.strip()[-300:]}"
                )
    for key, code in expected.items():
        if code not in (0, 5):
            failures.append(f"{key} warm-up exited {code}")
    med = {key: statistics.median(values) if values else float("nan") for key, values in samples.items()}
    return Timing(
        pytest_s=med["pytest"],
        tach_cold_s=med["tach_cold"],
        tach_warm_s=med["tach_warm"],
        cold_ratio=med["pytest"] / med["tach_cold"],
        warm_ratio=med["pytest"] / med["tach_warm"],
        startup_floor_s=med["startup_floor"],
        repeat=repeat,
        samples=samples,
        failures=failures,
    )


# ---------------------------------------------------------------- re-index of one edited file


def test_files_by_size(suite: Suite) -> list[Path]:
    files = [p for arg in suite.discovery_args for p in (suite.root / arg).rglob("test_*.py")]
    return sorted(files, key=lambda p: p.stat().st_size)


def typing_edits(text: str, count: int) -> list[str]:
    """Buffers as a user editing test bodies produces them: one line added inside a test, each time elsewhere."""
    import ast

    lines = text.splitlines(keepends=True)
    def first_line(stmt: ast.stmt) -> int:  # a decorated statement starts at its first decorator
        return min([stmt.lineno, *(d.lineno for d in getattr(stmt, "decorator_list", ()))])

    tests = [n for n in ast.walk(ast.parse(text)) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name.startswith("test")]
    starts = [first_line(n.body[0]) - 1 for n in tests]
    out = []
    for i, k in enumerate(starts[:count]):
        indent = lines[k][: len(lines[k]) - len(lines[k].lstrip())]
        edited = list(lines)
        edited.insert(k, f"{indent}tach_bench_{i} = {i}\n")
        out.append("".join(edited))
    return out


def time_reindex(suite: Suite, repeat: int) -> dict[str, Any]:
    """Time `WorkspaceIndex.update_file(path, buffer)` for edits inside test bodies.

    Measured on the suite's largest test file and on its median-sized one; the
    first call per file (a full parse, as when a file is opened) is not counted.
    """
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    try:
        from tach_ls.index import WorkspaceIndex
    except Exception as exc:  # noqa: BLE001 - any import failure means "not available"
        return {"available": False, "reason": f"import tach_ls.index failed: {exc!r}"}
    files = test_files_by_size(suite)
    if not files:
        return {"available": False, "reason": "no test file found"}
    try:
        started = time.perf_counter()
        workspace = WorkspaceIndex(suite.root, list(suite.discovery_args), use_cache=False)
        workspace.build()
        build_s = time.perf_counter() - started
        per_file = {}
        for label, path in (("largest", files[-1]), ("median", files[len(files) // 2])):
            original = path.read_text(encoding="utf-8")
            workspace.update_file(path, original)  # the file is opened: full parse, not counted
            samples = []
            for buffer in typing_edits(original, max(10, 4 * repeat)):
                for text in (buffer, original):  # one place changed each time, as when typing (and undoing)
                    t0 = time.perf_counter()
                    workspace.update_file(path, text)
                    samples.append(time.perf_counter() - t0)
            samples.sort()
            per_file[label] = {
                "file": str(path.relative_to(suite.root)),
                "lines": original.count("\n") + 1,
                "median_s": statistics.median(samples),
                "p90_s": samples[int(len(samples) * 0.9) - 1] if len(samples) > 1 else samples[0],
                "edits": len(samples),
            }
    except Exception as exc:  # noqa: BLE001 - report, never crash the bench
        return {"available": False, "reason": f"WorkspaceIndex raised {exc!r}"}
    return {"available": True, "build_s": build_s, "files": per_file, "update_median_s": per_file["largest"]["median_s"]}


def verdict(ok: bool) -> str:
    return "ok" if ok else "BELOW TARGET"


def print_collection(suite: Suite, collection: Collection) -> None:
    print(f"  pytest {' '.join(suite.discovery_args)}: {collection.summary} (exit {collection.returncode})")
    for error in collection.errors[:10]:
        print(f"  pytest collection error: {error}")


def print_tach(listing: TachListing) -> None:
    print(f"  tach-ls list: {len(listing.nodeids)} node ids (exit {listing.returncode})")
    if listing.returncode not in (0, 5) and listing.stderr:
        print("  tach-ls stderr (tail):")
        for line in listing.stderr.splitlines()[-8:]:
            print(f"    {line}")
    for error in listing.errors[:10]:
        print(f"  tach-ls index error: {error}")


def print_groups(title: str, groups: list[Group], listing: TachListing | None) -> None:
    if not groups:
        return
    print(f"  {title}: {sum(g.count for g in groups)} ids in {len(groups)} functions; by hint:")
    for hint, count in Counter(g.hint for g in groups).most_common():
        print(f"    {count:5d} functions: {hint}")
    for group in groups[:GROUPS_SHOWN]:
        item = listing.items.get(group.first) if listing is not None else None
        where = f" (tach-ls: line {item.get('line')}, kind {item.get('kind')})" if item else ""
        print(f"    {group.count:5d}  {group.function}  [{group.hint}]{where}")
        print(f"           e.g. {', '.join(group.examples)}")
        if group.other_side:
            print(f"           other side has: {', '.join(group.other_side)}")
    if len(groups) > GROUPS_SHOWN:
        print(f"    ... and {len(groups) - GROUPS_SHOWN} more functions")


def print_agreement(agreement: Agreement, listing: TachListing) -> None:
    print(
        f"  agreement: {agreement.matched}/{agreement.pytest_total} = {agreement.agreement_pct:.2f}% "
        f"(target >= {TARGET_AGREEMENT:.0f}%: {verdict(agreement.agreement_pct >= TARGET_AGREEMENT)}); "
        f"missing {agreement.missing}, extra {agreement.extra}, tach-ls duplicates {agreement.tach_duplicates}"
    )
    print_groups("missing (pytest has, tach-ls lacks)", agreement.missing_groups, None)
    print_groups("extra (tach-ls has, pytest lacks)", agreement.extra_groups, listing)


def print_timing(timing: Timing) -> None:
    print(
        f"  time (median of {timing.repeat}): pytest {timing.pytest_s * 1000:.0f} ms, "
        f"tach-ls cold {timing.tach_cold_s * 1000:.1f} ms ({timing.cold_ratio:.1f}x, target >= {TARGET_COLD:.0f}x: "
        f"{verdict(timing.cold_ratio >= TARGET_COLD)}), tach-ls warm {timing.tach_warm_s * 1000:.1f} ms "
        f"({timing.warm_ratio:.1f}x, target >= {TARGET_WARM:.0f}x: {verdict(timing.warm_ratio >= TARGET_WARM)})"
    )
    for failure in timing.failures:
        print(f"  timed run failed: {failure}")


def print_reindex(reindex: dict[str, Any]) -> None:
    if not reindex.get("available"):
        print(f"  re-index: API not available ({reindex.get('reason')})")
        return
    for label, r in reindex["files"].items():
        print(
            f"  re-index ({label} file {r['file']}, {r['lines']} lines, {r['edits']} edits inside tests): "
            f"median {r['median_s'] * 1000:.2f} ms, p90 {r['p90_s'] * 1000:.2f} ms  (target < 5 ms)"
        )


def print_table(results: list[dict[str, Any]]) -> None:
    print()
    print(
        f"{'suite':<9}{'pytest':>8}{'tach':>7}{'match':>7}{'miss':>6}{'extra':>6}{'agree%':>8}"
        f"{'pytest ms':>11}{'cold ms':>9}{'warm ms':>9}{'cold x':>8}{'warm x':>8}{'floor ms':>10}{'reindex ms':>12}"
    )
    for r in results:
        a, t, ri = r["agreement"], r["timing"], r["reindex"]
        reindex = f"{ri['update_median_s'] * 1000:.2f}" if ri.get("available") else "n/a"
        print(
            f"{r['suite']:<9}{a['pytest_total']:>8}{a['tach_total']:>7}{a['matched']:>7}{a['missing']:>6}{a['extra']:>6}"
            f"{a['agreement_pct']:>8.2f}{t['pytest_s'] * 1000:>11.0f}{t['tach_cold_s'] * 1000:>9.1f}"
            f"{t['tach_warm_s'] * 1000:>9.1f}{t['cold_ratio']:>8.1f}{t['warm_ratio']:>8.1f}"
            f"{t['startup_floor_s'] * 1000:>10.1f}{reindex:>12}"
        )
    print(f"targets: agreement >= {TARGET_AGREEMENT:.0f}%, cold >= {TARGET_COLD:.0f}x, warm >= {TARGET_WARM:.0f}x")


# ---------------------------------------------------------------- main


def bench_suite(suite: Suite, repeat: int) -> dict[str, Any]:
    print(f"== {suite.name}  ({suite.root.name}, args: {' '.join(suite.discovery_args)})")
    collection = collect_with_pytest(suite)
    print_collection(suite, collection)
    listing = list_with_tach(suite)
    print_tach(listing)
    agreement = compare(collection.nodeids, listing.nodeids)
    print_agreement(agreement, listing)
    timing = time_discovery(suite, repeat)
    print_timing(timing)
    reindex = time_reindex(suite, repeat)
    print_reindex(reindex)
    sys.stdout.flush()
    pytest_facts = {k: v for k, v in asdict(collection).items() if k != "nodeids"}
    return {
        "suite": suite.name,
        "root": str(suite.root),
        "args": suite.discovery_args,
        "pytest": pytest_facts,
        "tach": {"count": len(listing.nodeids), "returncode": listing.returncode, "errors": listing.errors[:50]},
        "agreement": asdict(agreement),
        "timing": asdict(timing),
        "reindex": reindex,
    }


def finite(value: Any) -> Any:
    """`value` with NaN floats (a command that never succeeded) as null, so the JSON stays standard."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [finite(item) for item in value]
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="SUITE", help=f"default: {' '.join(SUITES)}")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per command (median; default 5)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write every figure as JSON")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in SUITES]
    if unknown:
        parser.error(f"unknown suite(s) {unknown}; known: {' '.join(SUITES)}")
    cmd, _env = tach_command()
    print(f"tach-ls: {' '.join(cmd)}")
    results = [bench_suite(prepare(name), max(1, args.repeat)) for name in args.names or list(SUITES)]
    print_table(results)
    if args.json:
        doc = {"python": sys.version.split()[0], "results": results}
        args.json.write_text(json.dumps(finite(doc), indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
