"""What worker isolation costs: ``--isolation auto`` and ``strict`` against ``off`` on real suites.

Engines for the three levels (off, auto, strict; each with and without a
standby child) stay up side by side on the same suite and are measured in
interleaved rounds, so machine noise hits all three alike.
Prints, per suite (never asserted):

1. what the probe found (the features each worker gets);
2. isolating one worker on its own: ``namespaces.enter()`` timed inside a
   forked child of the suite's interpreter, and fork..exit with and without
   it (the kernel's teardown of the namespaces included);
3. per-test overhead, as clicks on single tests (the median of every click
   of a level, minus off's; the order of levels rotates each round):
   - with the standby child waiting, as in the editor: it entered its
     namespaces before the click, so isolation should cost nothing here;
   - without a standby: the worker is forked and isolated while the click
     waits, so this is the whole cost of isolating one worker;
4. the whole run (``-n 2``, warm zygote): the median and the best wall time
   of each level, the ratio to off, and the difference spread over the tests
   (ms per test); on a busy machine the best run is the steadier figure.

Targets (issue 4): under 2 ms per test, under 15% on Flask's whole run.

    python bench/isolation.py [flask click seaborn] [--rounds N] [--clicks N] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO))

from suites import Suite, prepare

from tach_ls.cachedir import cache_dir
from tach_ls.engine.runs import RunRequest
from tach_ls.engine.supervisor import EngineConfig, EngineState, Supervisor

LEVELS = ("off", "auto", "strict")
TARGET_MS_PER_TEST = 2.0
TARGET_RUN_RATIO = 1.15


def start(suite: Suite, isolation: str, standby: bool, scope: str = "batch") -> Supervisor:
    config = EngineConfig(
        root=suite.root,
        python=suite.python,
        cache_dir=cache_dir(suite.root),
        workers=2,
        collect_args=[str(suite.root / a) for a in suite.test_args],
        env=suite.env,
        isolation=isolation,
        isolation_scope=scope,
        standby=standby,
    )
    sup = Supervisor(config)
    sup.start()
    status = sup.wait_ready(300)
    if status.state != EngineState.READY:
        raise SystemExit(f"{suite.name}: the {isolation} engine did not start: {status.detail}")
    return sup


def click(sup: Supervisor, nodeid: str, standby: bool) -> tuple[float, list[str]]:
    if standby:
        sup.standby_ready.wait(10)  # a click comes to an idle engine, its standby waiting
    started = time.perf_counter()
    summary = sup.run(RunRequest(args=[nodeid])).wait(60)
    elapsed = time.perf_counter() - started
    return elapsed, summary.results[0].isolation


def whole_run(sup: Supervisor, suite: Suite) -> tuple[float, int]:
    started = time.perf_counter()
    summary = sup.run(RunRequest(args=[str(suite.root / a) for a in suite.test_args], workers=2)).wait(900)
    return time.perf_counter() - started, len(summary.results)


DIRECT = """
import json, os, statistics, sys, time
from tach_ls.engine import namespaces
root, count = sys.argv[1], int(sys.argv[2])
os.chdir(root)
namespaces.start_session({"isolation": "auto", "root": root}, lambda op, **fields: None)
enter, walls = [], {"off": [], "auto": []}
for turn in range(2 * count):
    level = ("off", "auto")[turn % 2]
    read_end, write_end = os.pipe()
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        began = time.perf_counter()
        if level == "auto":
            namespaces.enter()
        os.write(write_end, str(time.perf_counter() - began).encode())
        os._exit(0)
    os.close(write_end)
    inside = float(os.read(read_end, 64))
    os.close(read_end)
    os.waitpid(pid, 0)
    walls[level].append(time.perf_counter() - started)
    if level == "auto":
        enter.append(inside)
print(json.dumps({"enter_ms": statistics.median(enter) * 1e3, "off_ms": statistics.median(walls["off"]) * 1e3,
                  "auto_ms": statistics.median(walls["auto"]) * 1e3, "samples": count,
                  "features": namespaces.plan().features}))
"""


def isolate_directly(suite: Suite, count: int) -> dict[str, Any]:
    """fork + enter() + exit against fork + exit, in the suite's interpreter with Flask imported (its real size)."""
    env = dict(suite.env, PYTHONPATH=str(REPO))
    script = f"import {suite.name}\n" + DIRECT
    out = subprocess.run([str(suite.python), "-c", script, str(suite.root), str(count)], env=env, cwd=suite.root,
                         capture_output=True, text=True, check=True)  # fmt: skip
    return dict(json.loads(out.stdout))


def bench_suite(suite: Suite, rounds: int, clicks: int) -> dict[str, Any]:
    print(f"\n== {suite.name} ({suite.root.name}, {' '.join(suite.test_args)}) ==", flush=True)
    report: dict[str, Any] = {"suite": suite.name}
    engines = {(level, standby): start(suite, level, standby) for level in LEVELS for standby in (True, False)}
    try:
        probe = engines[("auto", True)]
        passing = [n for n, _, _ in probe.items]
        first = probe.run(RunRequest(args=passing[:40])).wait(300)
        picks = [r.nodeid for r in first.results if r.status.value == "passed"][:: max(1, 40 // clicks)][:clicks]
        features = first.results[0].isolation if first.results else []
        print(f"isolation auto here: {', '.join(features) or 'nothing'}; warnings: {probe.warnings or 'none'}", flush=True)
        report["features"] = features

        # 2. isolating one worker, alone: fork + enter + exit against fork + exit, in the suite's interpreter
        direct = isolate_directly(suite, 200)
        report["one_worker"] = direct
        print(
            f"isolating one worker (fork of the suite's interpreter, {direct['samples']} each, alternating): "
            f"enter() median {direct['enter_ms']:.2f} ms in the child; fork..exit {direct['off_ms']:.2f} ms off, "
            f"{direct['auto_ms']:.2f} ms auto ({direct['auto_ms'] - direct['off_ms']:+.2f} ms)",
            flush=True,
        )

        # 3. clicks: every level clicks every test `rounds` times, the order of levels rotating each round
        for standby in (True, False):
            samples: dict[str, list[float]] = {level: [] for level in LEVELS}
            for turn in range(rounds):
                order = LEVELS[turn % 3 :] + LEVELS[: turn % 3]
                for nodeid in picks:
                    for level in order:
                        elapsed, applied = click(engines[(level, standby)], nodeid, standby)
                        samples[level].append(elapsed * 1000.0)
                        if level != "off" and applied != features:
                            raise SystemExit(f"{level} click ran under {applied}, expected {features}")
            medians = {level: statistics.median(v) for level, v in samples.items()}
            overhead = {level: medians[level] - medians["off"] for level in LEVELS}
            key = "click_standby" if standby else "click_no_standby"
            report[key] = {"median_ms": medians, "overhead_ms": overhead, "clicks": len(samples["off"])}
            label = "click, standby waiting (editor)" if standby else "click, no standby (worker forked + isolated)"
            print(
                f"{label}: off {medians['off']:.1f} ms | auto {medians['auto']:.1f} ms ({overhead['auto']:+.2f} ms) | "
                f"strict {medians['strict']:.1f} ms ({overhead['strict']:+.2f} ms) "
                f"[median of {len(samples['off'])} clicks on {len(picks)} tests; target < {TARGET_MS_PER_TEST:g} ms]",
                flush=True,
            )

        # 4. whole run, warm, interleaved
        walls: dict[str, list[float]] = {level: [] for level in LEVELS}
        count = 0
        for level in LEVELS:
            whole_run(engines[(level, True)], suite)  # warm-up: .pyc files, the kernel's caches
        for turn in range(rounds):
            for level in LEVELS[turn % 3 :] + LEVELS[: turn % 3]:
                wall, count = whole_run(engines[(level, True)], suite)
                walls[level].append(wall)
        report["whole_run"] = {"tests": count, "runs": walls}
        # Noise from other processes only ever adds time: the best run is the steadier estimate on a busy machine.
        for name, pick in (("median", statistics.median), ("best", min)):
            wall = {level: pick(v) for level, v in walls.items()}
            ratio = {level: wall[level] / wall["off"] for level in LEVELS}
            per_test_ms = {level: (wall[level] - wall["off"]) * 1000.0 / max(1, count) for level in LEVELS}
            report["whole_run"][name] = {"s": wall, "ratio": ratio, "ms_per_test": per_test_ms}
            print(
                f"whole run -n 2 ({count} tests, {name} of {rounds}): off {wall['off']:.2f}s | "
                f"auto {wall['auto']:.2f}s ({ratio['auto']:.3f}x, {per_test_ms['auto']:+.2f} ms/test) | "
                f"strict {wall['strict']:.2f}s ({ratio['strict']:.3f}x, {per_test_ms['strict']:+.2f} ms/test) "
                f"[target < {TARGET_RUN_RATIO:.2f}x, < {TARGET_MS_PER_TEST:g} ms/test]",
                flush=True,
            )
        # 5. --isolation-scope test: every test its own worker and world (module fixtures per test)
        per_test = start(suite, "auto", True, scope="test")
        try:
            whole_run(per_test, suite)  # warm-up
            scoped = min(whole_run(per_test, suite)[0] for _ in range(max(1, rounds // 2)))
        finally:
            per_test.shutdown()
        best_off = min(walls["off"])
        report["whole_run"]["scope_test_s"] = scoped
        print(
            f"whole run -n 2, --isolation-scope test (auto): {scoped:.2f}s, {scoped / best_off:.2f}x off's best "
            f"({(scoped - best_off) * 1000.0 / max(1, count):+.2f} ms/test): the price of a fresh world per test",
            flush=True,
        )
    finally:
        for sup in engines.values():
            sup.shutdown()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", default=["flask"])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per measurement (default 5)")
    parser.add_argument("--clicks", type=int, default=8, help="tests clicked one by one (default 8)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    reports = [bench_suite(prepare(name), args.rounds, args.clicks) for name in args.names]
    if args.json:
        Path(args.json).write_text(json.dumps(reports, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
