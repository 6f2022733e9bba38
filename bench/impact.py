"""Mutation benchmark for impact analysis: does `tach-ls run --affected` ever miss a failure?

For each suite (Flask 3.1.3, Click 8.5.1 from PyPI sdists, copied into a
temporary git repository): record a baseline with `tach-ls run --coverage`;
then for each of N mutations of library functions (a flipped comparison, a
changed constant, a dropped `not`, a return of None...), run the whole suite
with plain pytest (the truth) and `tach-ls run --affected` (what tach-ls
selects and runs), compare, and revert. Prints per mutation the failing
tests, the selected count and any missed failure; then the median and 90th
percentile of the fraction selected. Targets: 0 missed failures, median
selected under 5% of the suite. Asserts nothing.

Usage: python bench/impact.py [flask click] [--mutations N] [--seed S]
"""

from __future__ import annotations

import argparse
import ast
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(BENCH), str(REPO)]

from suites import Suite, prepare  # noqa: E402

PACKAGES = {"flask": "src/flask", "click": "src/click"}


@dataclass
class Mutation:
    path: str
    line: int
    description: str
    original: str
    mutated: str


class _Mutator(ast.NodeTransformer):
    """Applies the `target`-th applicable mutation in a file."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.seen = 0
        self.done: tuple[int, str] | None = None

    def _hit(self, node: ast.AST, what: str) -> bool:
        if self.done is None and self.seen == self.target:
            self.done = (getattr(node, "lineno", 0), what)
            self.seen += 1
            return True
        self.seen += 1
        return False

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        swap = {ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Lt: ast.GtE, ast.GtE: ast.Lt, ast.Gt: ast.LtE, ast.LtE: ast.Gt, ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In}
        op = type(node.ops[0])
        if op in swap and self._hit(node, f"{op.__name__} -> {swap[op].__name__}"):
            node.ops[0] = swap[op]()
        return node

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.op, ast.Not) and self._hit(node, "drop `not`"):
            return node.operand
        return node

    def visit_Return(self, node: ast.Return) -> ast.AST:
        self.generic_visit(node)
        if node.value is not None and not (isinstance(node.value, ast.Constant) and node.value.value is None) and self._hit(node, "return None"):
            node.value = ast.Constant(None)
        return node

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        if isinstance(node.value, int) and not isinstance(node.value, bool) and self._hit(node, f"{node.value} -> {node.value + 1}"):
            return ast.copy_location(ast.Constant(node.value + 1), node)
        return node


def candidates(root: Path, package: str, count: int, seed: int) -> list[Mutation]:
    rng = random.Random(seed)
    files = sorted((root / package).rglob("*.py"))
    out: list[Mutation] = []
    attempts = 0
    while len(out) < count and attempts < count * 50:
        attempts += 1
        path = rng.choice(files)
        source = path.read_text()
        tree = ast.parse(source)
        counter = _Mutator(10**9)
        counter.visit(tree)
        if counter.seen == 0:
            continue
        target = rng.randrange(counter.seen)
        mutator = _Mutator(target)
        mutated_tree = mutator.visit(ast.parse(source))
        if mutator.done is None:
            continue
        line, what = mutator.done
        # Only functions' bodies: mutate code tests execute, not import-time statements.
        functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        if not any(f.lineno < line <= (f.end_lineno or 0) for f in functions):
            continue
        # The whole module unparsed: comments and formatting go, which changes no behaviour,
        # and block fingerprints ignore them, so only the mutated function counts as changed.
        mutated_source = ast.unparse(mutated_tree)
        rel = str(path.relative_to(root))
        if any(m.path == rel and m.line == line for m in out):
            continue
        out.append(Mutation(rel, line, what, source, mutated_source))
    return out


def copy_env(suite: Suite, root: Path) -> dict[str, str]:
    """The suite's environment, importing the package from the mutated copy, not the venv's install."""
    return {**suite.env, "PYTHONPATH": str(root / "src")}


def pytest_failures(suite: Suite, root: Path, known: set[str]) -> set[str]:
    """Node ids pytest reports FAILED or ERROR. A line is `FAILED <nodeid> - <message>` and ids may hold
    spaces, so each is matched to the longest known id (the baseline run's) it starts with."""
    proc = subprocess.run(
        [str(suite.python), "-m", "pytest", "-q", "--tb=no", "-rfE", "-p", "no:cacheprovider", *suite.test_args],
        cwd=root, env=copy_env(suite, root), capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    out = set()
    for line in proc.stdout.splitlines():
        if not line.startswith(("FAILED ", "ERROR ")) or "::" not in line:
            continue
        rest = line.split(" ", 1)[1]
        matches = [k for k in known if rest == k or rest.startswith(k + " - ")]
        out.add(max(matches, key=len) if matches else rest.split(" - ", 1)[0])
    return out


def tach(suite: Suite, root: Path, *args: str) -> list[dict[str, object]]:
    env = copy_env(suite, root)
    env.pop("VIRTUAL_ENV", None)
    proc = subprocess.run(
        [sys.executable, "-m", "tach_ls.cli", "run", "--python", str(suite.python), "--format", "json", *args, *suite.test_args],
        cwd=root, env={**env, "PYTHONPATH": f"{root / 'src'}:{REPO}"}, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if not any(e.get("event") == "run_finished" for e in events):
        raise SystemExit(f"tach-ls run {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return events


def bench_suite(name: str, count: int, seed: int) -> dict[str, object]:
    suite = prepare(name)
    work = Path(tempfile.mkdtemp(prefix=f"tach-impact-{name}-"))
    root = work / suite.root.name
    shutil.copytree(suite.root, root, ignore=shutil.ignore_patterns(".tach-ls", "__pycache__", ".pytest_cache"))
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "base"], cwd=root, check=True)
    baseline = tach(suite, root, "--coverage")
    known = {str(e["test"]) for e in baseline if e.get("event") == "test_finished"}
    total = len(known)
    rows = []
    for m in candidates(root, PACKAGES[name], count, seed):
        (root / m.path).write_text(m.mutated)
        try:
            truth = pytest_failures(suite, root, known)
            events = tach(suite, root, "--affected", "--coverage")
            ran = {str(e["test"]): str(e["status"]) for e in events if e.get("event") == "test_finished"}
            failed = {t for t, s in ran.items() if s in ("failed", "error", "crashed", "timeout")}
            missed = sorted(truth - set(ran))
            rows.append({"mutation": f"{m.path}:{m.line} {m.description}", "pytest_failures": len(truth), "selected": len(ran),
                         "tach_failures": len(failed), "missed": missed})  # fmt: skip
            print(f"  {m.path}:{m.line:<5} {m.description:<22} failing {len(truth):>4}  selected {len(ran):>5}  missed {len(missed)}", flush=True)
        finally:
            (root / m.path).write_text(m.original)
            tach(suite, root, "--affected", "--coverage")  # record the reverted state (re-runs what the mutation touched)
    fractions = sorted(r["selected"] / total for r in rows) if total else [0.0]  # type: ignore[operator]
    shutil.rmtree(work, ignore_errors=True)
    return {
        "suite": name, "tests": total, "mutations": len(rows),
        "missed_failures": sum(len(r["missed"]) for r in rows),  # type: ignore[arg-type]
        "median_selected": statistics.median(fractions), "p90_selected": fractions[int(len(fractions) * 0.9) - 1] if len(fractions) > 1 else fractions[0],
        "rows": rows,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("suites", nargs="*", default=["flask", "click"])
    parser.add_argument("--mutations", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    results = []
    for name in args.suites:
        print(f"{name}:")
        r = bench_suite(name, args.mutations, args.seed)
        results.append(r)
        print(
            f"{name}: {r['mutations']} mutations, {r['tests']} tests; missed failures {r['missed_failures']} (target 0); "
            f"selected median {r['median_selected']:.1%}, p90 {r['p90_selected']:.1%} (target median < 5%)"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
