"""Per-test coverage on real suites (Flask, Click), Python 3.11 and 3.12: its cost, and agreement with coverage.py.

Prints, per suite and interpreter, measured side by side in one run (never asserted):

1. run time (wall and CPU), medians of ``--repeat`` interleaved rounds (each round runs every
   process variant once and every tach-ls variant ``--engine-runs`` times, all in one shuffled
   order, after one untimed warm-up of each: a tach-ls run takes 2-3 s against pytest-cov's 20,
   so its ratio, which the target is about, gets the samples that steady it):
   - ``pytest``, ``coverage run -m pytest`` and ``pytest --cov=ROOT
     --cov-context=test`` (pytest-cov's per-test contexts), each a whole process;
   - a warm ``tach-ls`` "run all" (a zygote already up, as in the editor) with
     and without per-test coverage, with 1 and 2 workers;
   and the overheads: tach-ls with coverage against tach-ls without, ``coverage
   run`` against ``pytest``, pytest-cov with contexts against ``pytest``. CPU is
   user+sys of every process involved (pytest's; for tach-ls the server's own,
   the collected layer's and the workers' it reaped): on a shared machine it
   moves much less than wall time.
   Targets printed next to them: tach-ls's overhead under 20% on 3.12 and under
   60% on 3.11, and below pytest-cov's with per-test contexts;
2. agreement with coverage.py for the same tests: one tach-ls worker (so tests
   run in pytest's order in one process, as the reference does) against
   ``pytest --cov=ROOT --cov-context=test``: executed lines per file, and each
   test's lines against the union of its contexts; the differences, if any.

The suites come from ``suites.py`` (exact sdists). Their own venvs are not
touched: this script builds ``bench/.work/venvs/<suite>-cov-py3.X`` per
interpreter with the same pins plus pytest-cov (marker file as in suites.py).
Workers run without isolation (``--isolation off``): this measures coverage.

    python bench/coverage.py [flask click] [--python 3.11 3.12] [--repeat N] [--engine-runs K] [--json FILE]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

from suites import SUITES, VENV_DIR, prepare, suite_env

# This file is named coverage.py: with bench/ on sys.path, `import coverage` would find it, not coverage.py.
sys.path[:] = [p for p in sys.path if os.path.realpath(p or os.curdir) != str(BENCH)]
sys.path.insert(0, str(REPO))

from tach_ls.cachedir import cache_dir
from tach_ls.engine.runs import RunRequest
from tach_ls.engine.supervisor import EngineConfig, EngineState, Supervisor

PYTEST_COV = ("pytest-cov==7.1.0",)
TARGETS = {"3.12": 20.0, "3.11": 60.0}
MARKER = ".tach-bench-coverage"


@dataclass(frozen=True)
class Env:
    name: str
    version: str
    root: Path
    python: Path
    env: dict[str, str]
    test_args: list[str]


def find_python(version: str) -> str:
    for candidate in [shutil.which(f"python{version}"), *sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python{version}")))]:
        if candidate and subprocess.run([candidate, "-c", "pass"], capture_output=True, check=False).returncode == 0:
            return candidate
    raise SystemExit(f"bench/coverage.py: no python{version} found; install it (e.g. pyenv install {version})")


def prepare_env(name: str, version: str) -> Env:
    """The suite's source (suites.prepare) and a venv for ``version`` with its pins plus pytest-cov."""
    suite = prepare(name, quiet=True)
    recipe = SUITES[name]
    venv = VENV_DIR / f"{name}-cov-py{version}"
    python = venv / "bin" / "python"
    base = find_python(version)
    fingerprint = json.dumps({"recipe": recipe.fingerprint(), "base": base, "extra": PYTEST_COV}, sort_keys=True)
    marker = venv / MARKER
    if not (marker.is_file() and marker.read_text() == fingerprint and python.exists()):
        if venv.exists():
            shutil.rmtree(venv)
        print(f"[coverage] creating {venv} with {base}", file=sys.stderr, flush=True)
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
        args = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-e", str(suite.root),
                *recipe.requirements, *PYTEST_COV]  # fmt: skip
        done = subprocess.run(args, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"bench/coverage.py: pip install failed for {name} on {version}:\n{done.stderr[-3000:]}")
        marker.write_text(fingerprint)
    return Env(name, version, suite.root, python, suite_env(recipe, venv), list(suite.test_args))


# -- variants -------------------------------------------------------------------------------


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_process(env: Env, argv: list[str], extra_env: dict[str, str] | None = None) -> tuple[float, float]:
    """(wall, CPU) seconds of one whole process."""
    cpu, started = children_cpu(), time.perf_counter()
    subprocess.run(argv, cwd=env.root, env={**env.env, **(extra_env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - started, children_cpu() - cpu


def pytest_argv(env: Env, *extra: str) -> list[str]:
    return [str(env.python), "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra, *env.test_args]


def start_engine(env: Env, coverage: bool, workers: int) -> Supervisor:
    config = EngineConfig(
        root=env.root, python=env.python, cache_dir=cache_dir(env.root), workers=workers,
        collect_args=[str(env.root / a) for a in env.test_args], env=env.env, isolation="off", coverage=coverage,
    )  # fmt: skip
    sup = Supervisor(config)
    sup.start()
    status = sup.wait_ready(300)
    if status.state != EngineState.READY:
        raise SystemExit(f"{env.name} {env.version}: the zygote did not start: {status.detail}")
    return sup


_CLOCK = os.sysconf("SC_CLK_TCK")


def _layer_cpu(sup: Supervisor) -> float:
    """CPU of the collected layer and of the workers it reaped (they are its children)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                if sup.rundir.encode() not in handle.read():
                    continue
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15]) / _CLOCK  # utime, stime, cutime, cstime
    return total


def engine_run(sup: Supervisor) -> tuple[float, float, Any]:
    """(wall, CPU, summary) of a warm "run all": the supervisor's CPU, the zygote's and its workers'."""
    sup.standby_ready.wait(30)
    cpu = _layer_cpu(sup) + time.process_time()
    started = time.perf_counter()
    summary = sup.run(RunRequest()).wait(600)
    wall = time.perf_counter() - started
    server = time.process_time()
    sup.standby_ready.wait(30)  # the next standby is forked once every worker of the run is reaped
    return wall, _layer_cpu(sup) + server - cpu, summary


def measure(env: Env, repeat: int, scratch: Path, engine_runs: int = 3) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    data_file = scratch / f"{env.name}-{env.version}.coverage"
    cov_env = {"COVERAGE_FILE": str(data_file)}
    process_variants = {
        "pytest": (pytest_argv(env), None),
        "coverage run -m pytest": ([str(env.python), "-m", "coverage", "run", f"--data-file={data_file}", "-m", "pytest",
                                    "-q", "-p", "no:cacheprovider", *env.test_args], None),  # fmt: skip
        "pytest-cov --cov-context=test": (pytest_argv(env, f"--cov={env.root}", "--cov-context=test", "--cov-report="), cov_env),
    }
    engines = {
        (coverage, workers): start_engine(env, coverage, workers) for workers in (2, 1) for coverage in (False, True)
    }
    names = {(c, w): f"tach-ls -n {w}" + (" --coverage" if c else "") for c, w in engines}
    times: dict[str, list[float]] = {name: [] for name in [*process_variants, *names.values()]}
    cpus: dict[str, list[float]] = {name: [] for name in times}
    try:
        for argv, extra in process_variants.values():  # warm-up: .pyc files, page cache
            run_process(env, argv, extra)
        for sup in engines.values():
            engine_run(sup)
        for _ in range(repeat):
            order = [*process_variants, *engines] + [*engines] * (engine_runs - 1)
            random.shuffle(order)
            for key in order:
                if isinstance(key, str):
                    argv, extra = process_variants[key]
                    wall, cpu = run_process(env, argv, extra)
                    times[key].append(wall)
                    cpus[key].append(cpu)
                else:
                    wall, cpu, summary = engine_run(engines[key])
                    times[names[key]].append(wall)
                    cpus[names[key]].append(cpu)
                    if key[0] and summary.coverage is not None and summary.coverage.partial:
                        print(f"  note: {len(summary.coverage.partial)} partial tests", file=sys.stderr)
    finally:
        for sup in engines.values():
            sup.shutdown()
    return times, cpus


# -- agreement ---------------------------------------------------------------------------------


def agreement(env: Env, scratch: Path) -> dict[str, Any]:
    """tach-ls (one worker) against pytest-cov --cov-context=test on the same tests."""
    from coverage import CoverageData

    data_file = scratch / f"{env.name}-{env.version}-agree.coverage"
    subprocess.run(pytest_argv(env, f"--cov={env.root}", "--cov-context=test", "--cov-report="), cwd=env.root,
                   env={**env.env, "COVERAGE_FILE": str(data_file)}, capture_output=True, check=False)  # fmt: skip
    sup = start_engine(env, True, 1)
    try:
        _, _, summary = engine_run(sup)
    finally:
        sup.shutdown()
    data = CoverageData(basename=str(data_file))
    data.read()
    root = os.path.realpath(env.root)
    ref_files: dict[str, set[int]] = {}
    ref_tests: dict[str, dict[str, set[int]]] = {}
    for path in data.measured_files():
        rel = os.path.relpath(os.path.realpath(path), root)
        lines = set(data.lines(path) or [])
        if lines:
            ref_files[rel] = lines
        for line, contexts in data.contexts_by_lineno(path).items():
            for context in contexts:
                if context:
                    ref_tests.setdefault(context.rsplit("|", 1)[0], {}).setdefault(rel, set()).add(line)
    ours_files = {rel: set(lines) for rel, lines in summary.coverage.files.items()}
    file_diffs = {
        rel: (sorted(ours_files.get(rel, set()) - ref_files.get(rel, set()))[:8], sorted(ref_files.get(rel, set()) - ours_files.get(rel, set()))[:8])
        for rel in set(ours_files) | set(ref_files)
        if ours_files.get(rel, set()) != ref_files.get(rel, set())
    }  # fmt: skip
    test_diffs = {}
    for result in summary.results:
        ours = {rel: set(lines) for rel, lines in (result.coverage or {}).items()}
        ref = ref_tests.get(result.nodeid, {})
        if ours != ref:
            test_diffs[result.nodeid] = sorted(
                (rel, sorted(ours.get(rel, set()) ^ ref.get(rel, set()))[:6]) for rel in set(ours) | set(ref) if ours.get(rel) != ref.get(rel)
            )  # fmt: skip
    return {
        "files": len(set(ours_files) | set(ref_files)),
        "files_equal": len(set(ours_files) | set(ref_files)) - len(file_diffs),
        "tests": len(summary.results),
        "tests_equal": len(summary.results) - len(test_diffs),
        "partial": len(summary.coverage.partial),
        "file_diffs": dict(sorted(file_diffs.items())[:10]),
        "test_diffs": dict(sorted(test_diffs.items())[:10]),
    }


# -- report ------------------------------------------------------------------------------------


def report(env: Env, times: dict[str, list[float]], cpus: dict[str, list[float]], agree: dict[str, Any]) -> dict[str, Any]:
    target = TARGETS[env.version]
    runs = len(times["tach-ls -n 1"]) // max(1, len(times["pytest"]))
    print(f"\n== {env.name} on Python {env.version} ({len(times['pytest'])} rounds, tach-ls {runs} runs a round, medians) ==")
    print(f"  {'':<32} {'wall':>7}   {'CPU':>7}")
    for name in times:
        print(f"  {name:<32} {statistics.median(times[name]):6.2f}s   {statistics.median(cpus[name]):6.2f}s"
              f"   (wall {min(times[name]):.2f}-{max(times[name]):.2f})")  # fmt: skip
    overheads: dict[str, dict[str, float]] = {}
    for label, samples in (("wall", times), ("CPU", cpus)):
        med = {name: statistics.median(values) for name, values in samples.items()}

        def over(with_: str, without: str, med: dict[str, float] = med) -> float:
            return 100.0 * (med[with_] / med[without] - 1.0)

        row = {
            "tach-ls -n 2": over("tach-ls -n 2 --coverage", "tach-ls -n 2"),
            "tach-ls -n 1": over("tach-ls -n 1 --coverage", "tach-ls -n 1"),
            "coverage run": over("coverage run -m pytest", "pytest"),
            "pytest-cov contexts": over("pytest-cov --cov-context=test", "pytest"),
        }
        overheads[label] = row
        worst = max(row["tach-ls -n 2"], row["tach-ls -n 1"])
        print(f"  overhead ({label}): tach-ls per-test coverage {row['tach-ls -n 2']:+.1f}% (-n 2), {row['tach-ls -n 1']:+.1f}% (-n 1)"
              f" [target < {target:.0f}%: {'met' if worst < target else 'MISSED'}];"
              f" coverage run {row['coverage run']:+.1f}%; pytest-cov --cov-context=test {row['pytest-cov contexts']:+.1f}%"
              f" [tach-ls cheaper: {'yes' if worst < row['pytest-cov contexts'] else 'NO'}]")  # fmt: skip
    print(f"  agreement with coverage.py: files {agree['files_equal']}/{agree['files']} equal, "
          f"tests {agree['tests_equal']}/{agree['tests']} equal, {agree['partial']} partial")  # fmt: skip
    for rel, (extra, missing) in agree["file_diffs"].items():
        print(f"    file {rel}: tach-ls only {extra}, coverage.py only {missing}")
    for nodeid, diffs in agree["test_diffs"].items():
        print(f"    test {nodeid}: {diffs}")
    return {"suite": env.name, "python": env.version, "wall": times, "cpu": cpus, "overhead": overheads, "agreement": agree}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suites", nargs="*", default=["flask", "click"])
    parser.add_argument("--python", nargs="+", default=["3.11", "3.12"], choices=sorted(TARGETS))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--engine-runs", type=int, default=3, help="runs of each tach-ls variant per round")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    out = []
    with tempfile.TemporaryDirectory(prefix="tach-bench-cov-") as scratch:
        for name in args.suites:
            for version in args.python:
                env = prepare_env(name, version)
                times, cpus = measure(env, args.repeat, Path(scratch), max(1, args.engine_runs))
                out.append(report(env, times, cpus, agreement(env, Path(scratch))))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
