"""The warm zygote engine against plain pytest on real suites (Flask, Click, seaborn).

Prints, per suite, measured side by side in one run (never asserted):

1. outcome agreement: every node id's status under plain ``pytest`` and under
   tach-ls, and how many tests fail under pytest but pass under tach-ls (the
   number that must be 0);
2. single-test latency: median of a cold ``python -m pytest NODEID`` against a
   click through the warm zygote (standby child on), same node ids;
3. full-suite wall time: ``pytest``, ``pytest -n 2``, ``tach-ls run -n 2`` from
   cold (the command line, zygote start and collection included) and warm (a
   "run all" through a zygote already up, as in the editor);
4. memory: RSS and PSS of the base layer, the collected layer, the standby
   child and the workers during a wide run (PSS shows copy-on-write sharing).

Cold pytest runs without PYTHONDONTWRITEBYTECODE (the suite env drops it), as
on a user's machine, after one untimed warm-up run; the cold ``tach-ls run``
is the console script of the bench's own tach-ls venv (``suites.prepare_tach``),
not this machine's global interpreter, whose site-packages carry a start-up
hook no user has.

    python bench/engine.py [flask click seaborn] [--repeat N] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO))

from suites import Suite, prepare, prepare_tach

from tach_ls.cachedir import cache_dir
from tach_ls.engine.runs import RunRequest
from tach_ls.engine.supervisor import EngineConfig, EngineState, Supervisor

TARGET_LATENCY = 100.0
TARGET_SERIAL = 1.5

OUTCOMES_PLUGIN = '''
"""Writes one JSON line per test with the status tach-ls would give it."""
import json, os
_out = open(os.environ["TACH_BENCH_OUTCOMES"], "w")
_reports = {}

def _status(reports):
    by = {r.when: r for r in reports}
    setup, call, teardown = by.get("setup"), by.get("call"), by.get("teardown")
    status = "passed"
    if setup is not None and setup.failed:
        status = "error"
    elif setup is not None and setup.skipped:
        status = "xfailed" if hasattr(setup, "wasxfail") else "skipped"
    elif call is not None:
        if call.failed:
            status = "failed"
        elif call.skipped:
            status = "xfailed" if hasattr(call, "wasxfail") else "skipped"
        elif hasattr(call, "wasxfail"):
            status = "xpassed"
    if teardown is not None and teardown.failed and status not in ("failed", "error"):
        status = "error"
    return status

def pytest_runtest_logreport(report):
    _reports.setdefault(report.nodeid, []).append(report)
    if report.when == "teardown":
        _out.write(json.dumps({"nodeid": report.nodeid, "status": _status(_reports.pop(report.nodeid))}) + "\\n")
        _out.flush()

def pytest_collectreport(report):
    if report.failed:
        _out.write(json.dumps({"nodeid": report.nodeid, "status": "error"}) + "\\n")
        _out.flush()
'''


def timed(argv: list[str], suite: Suite, env: dict[str, str] | None = None) -> tuple[float, int]:
    started = time.perf_counter()
    proc = subprocess.run(
        argv, cwd=suite.root, env=env or suite.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
    )
    return time.perf_counter() - started, proc.returncode


def pytest_outcomes(suite: Suite) -> dict[str, str]:
    with tempfile.TemporaryDirectory(prefix="tach-bench-") as tmp:
        Path(tmp, "tach_bench_outcomes.py").write_text(OUTCOMES_PLUGIN)
        out = Path(tmp, "outcomes.jsonl")
        env = dict(suite.env, PYTHONPATH=tmp, TACH_BENCH_OUTCOMES=str(out))
        argv = [str(suite.python), "-m", "pytest", "-p", "tach_bench_outcomes", "-q", "-p", "no:cacheprovider"]
        subprocess.run(argv + suite.test_args, cwd=suite.root, env=env, capture_output=True, check=False)
        lines = out.read_text().splitlines()
    return {d["nodeid"]: d["status"] for d in map(json.loads, lines)}


def start_engine(suite: Suite, workers: int = 2) -> Supervisor:
    config = EngineConfig(
        root=suite.root,
        python=suite.python,
        cache_dir=cache_dir(suite.root),
        workers=workers,
        collect_args=[str(suite.root / a) for a in suite.test_args],
        env=suite.env,
    )
    sup = Supervisor(config)
    sup.start()
    status = sup.wait_ready(300)
    if status.state != EngineState.READY:
        raise SystemExit(f"{suite.name}: the zygote did not start: {status.detail}")
    return sup


def pss_rss(pid: int) -> tuple[float, float]:
    """(PSS, RSS) in MB from smaps_rollup."""
    values = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                parts = line.split()
                if parts[0] in ("Rss:", "Pss:"):
                    values[parts[0]] = int(parts[1]) / 1024.0
    except OSError:
        return 0.0, 0.0
    return values.get("Pss:", 0.0), values.get("Rss:", 0.0)


def children_of(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(p) for p in handle.read().split()]
    except OSError:
        return []


def bench_suite(suite: Suite, repeat: int) -> dict[str, Any]:
    report: dict[str, Any] = {"suite": suite.name}
    print(f"\n== {suite.name} ({suite.root.name}, {' '.join(suite.test_args)}) ==", flush=True)
    py = str(suite.python)

    # 1. agreement
    reference = pytest_outcomes(suite)
    sup = start_engine(suite)
    try:
        summary = sup.run(RunRequest(args=[str(suite.root / a) for a in suite.test_args])).wait(900)
        ours = {r.nodeid: r.status.value for r in summary.results}
        only_pytest = sorted(set(reference) - set(ours))
        only_ours = sorted(set(ours) - set(reference))
        differ = sorted(n for n in set(reference) & set(ours) if reference[n] != ours[n])
        bad = ("failed", "error")
        hidden = [n for n in differ if reference[n] in bad and ours[n] in ("passed", "skipped", "xfailed", "xpassed")]
        agree = len(reference) - len(only_pytest) - len(differ)
        report["agreement"] = {
            "pytest_tests": len(reference), "tach_tests": len(ours), "agree": agree,
            "percent": round(100.0 * agree / max(1, len(reference)), 2), "differ": differ[:20],
            "only_pytest": only_pytest[:20], "only_tach": only_ours[:20], "fail_in_pytest_pass_in_tach": len(hidden),
        }  # fmt: skip
        print(
            f"agreement: {agree}/{len(reference)} node ids agree ({report['agreement']['percent']}%), "
            f"{len(differ)} differ, {len(only_pytest)} only in pytest, {len(only_ours)} only in tach-ls; "
            f"fail under pytest but pass under tach-ls: {len(hidden)}",
            flush=True,
        )
        for nodeid in differ[:10]:
            print(f"  differs: {nodeid}: pytest {reference[nodeid]}, tach-ls {ours[nodeid]}")

        # 2. single-test latency
        order = {nodeid: i for i, (nodeid, _, _) in enumerate(sup.items)}
        passing = sorted((n for n in ours if ours[n] == "passed" and reference.get(n) == "passed"), key=order.get)
        step = max(1, len(passing) // 5)
        picks = passing[::step][:5]
        cold: list[float] = []
        for nodeid in picks:
            timed([py, "-m", "pytest", nodeid, "-q", "-p", "no:cacheprovider"], suite)  # warm-up: .pyc files
            for _ in range(repeat):
                cold.append(timed([py, "-m", "pytest", nodeid, "-q", "-p", "no:cacheprovider"], suite)[0])
        warm: list[float] = []
        for nodeid in picks:
            for _ in range(repeat + 1):
                sup.standby_ready.wait(5)  # a click comes to an idle engine, its standby child waiting
                started = time.perf_counter()
                result = sup.run(RunRequest(args=[nodeid])).wait(60)
                elapsed = time.perf_counter() - started
                assert result.count(result.results[0].status) == 1
                warm.append(elapsed)
        cold_med, warm_med = statistics.median(cold), statistics.median(warm)
        report["latency"] = {"cold_s": cold_med, "warm_s": warm_med, "ratio": cold_med / warm_med, "tests": picks}
        print(
            f"single test: cold `python -m pytest NODEID` median {cold_med * 1000:.0f} ms | warm tach-ls median "
            f"{warm_med * 1000:.1f} ms | {cold_med / warm_med:.0f}x faster (target >= {TARGET_LATENCY:.0f}x on flask)",
            flush=True,
        )

        # 4. memory (idle layers, then workers sampled during a wide run)
        sup.standby_ready.wait(10)
        layers = sup._layers
        base_pid = layers.base.pid if layers.base is not None else 0
        collected_pids = children_of(base_pid)
        collected_pid = collected_pids[0] if collected_pids else 0
        standby = children_of(collected_pid) if collected_pid else []
        memory = {
            "base": pss_rss(base_pid),
            "collected": pss_rss(collected_pid),
            "standby": pss_rss(standby[0]) if standby else (0.0, 0.0),
        }
        peak: dict[int, tuple[float, float]] = {}
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                for pid in children_of(collected_pid):
                    pss, rss = pss_rss(pid)
                    if rss > peak.get(pid, (0.0, 0.0))[1]:
                        peak[pid] = (pss, rss)
                time.sleep(0.1)

        # 3. full suite, warm: the best of two runs, then one more for the memory sampler
        everything = RunRequest(args=[str(suite.root / a) for a in suite.test_args], workers=2)
        warm_full = float("inf")
        for _ in range(2):
            started = time.perf_counter()
            warm_summary = sup.run(everything).wait(900)
            warm_full = min(warm_full, time.perf_counter() - started)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        sup.run(everything).wait(900)
        stop.set()
        sampler.join()
        if peak:
            memory["worker_peak_mean"] = (
                statistics.mean(p for p, _ in peak.values()),
                statistics.mean(r for _, r in peak.values()),
            )
        report["memory_mb"] = {k: {"pss": round(v[0], 1), "rss": round(v[1], 1)} for k, v in memory.items()}
        print(
            "memory (PSS / RSS MB): "
            + ", ".join(f"{k} {v[0]:.0f} / {v[1]:.0f}" for k, v in memory.items())
            + f" ({len(peak)} workers sampled)",
            flush=True,
        )
        assert len(warm_summary.results) == len(ours)
    finally:
        sup.shutdown()

    # 3. full suite, cold commands (best of two each); tach-ls from its own venv, as a user installs it
    cli_env = dict(suite.env)
    cli = prepare_tach(quiet=True).cli()

    def best(argv: list[str], env: dict[str, str] | None = None) -> float:
        return min(timed(argv, suite, env)[0] for _ in range(2))

    serial = best([py, "-m", "pytest", "-q", "-p", "no:cacheprovider", *suite.test_args])
    xdist = best([py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2", *suite.test_args])
    cold_tach = best([*cli, "run", "-n", "2", "--python", py, *suite.test_args], cli_env)
    report["full_suite_s"] = {
        "pytest": serial, "pytest_n2": xdist, "tach_cold_n2": cold_tach, "tach_warm_n2": warm_full,
    }  # fmt: skip
    print(
        f"full suite: pytest {serial:.2f}s | pytest -n 2 {xdist:.2f}s | tach-ls run -n 2 cold {cold_tach:.2f}s "
        f"({serial / cold_tach:.2f}x serial, {xdist / cold_tach:.2f}x xdist) | warm {warm_full:.2f}s "
        f"({serial / warm_full:.2f}x serial, {xdist / warm_full:.2f}x xdist) (target >= {TARGET_SERIAL}x serial, > 1x xdist)",
        flush=True,
    )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", default=["flask", "click", "seaborn"])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per single test (default 3)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    reports = [bench_suite(prepare(name), args.repeat) for name in args.names]
    if args.json:
        Path(args.json).write_text(json.dumps(reports, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
