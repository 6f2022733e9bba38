"""The language server on Flask's real suite, against cold pytest, side by side in one run.

Measures, with a real LSP client over stdio (pytest-lsp's) driving `python -m tach_ls`:

- time from starting the server (`initialize` is its first input) to the first
  `tach/testsChanged` (the test tree): in a first session, and in later ones,
  where `tach_ls.early` answers before pygls has loaded;
- `tach.runTests` on one test with a warm zygote, round trip, against a cold
  `python -m pytest NODEID` (medians);
- time from `didSave` of a broken test (run on save: file) to the diagnostic at
  its line.

Prints numbers and ratios; asserts nothing. Usage: python bench/lsp.py [--repeat N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(BENCH), str(REPO)]

from suites import Suite, prepare, prepare_tach  # noqa: E402

from tach_ls import protocol  # noqa: E402
from tests.e2e.harness import start, stop  # noqa: E402

NODEID = "tests/test_basic.py::test_options_work"
SAVE_FILE = "tests/test_json_tag.py"
BROKEN_TEST = "def test_duplicate_tag():"


SERVER_PYTHON: list[str] = [sys.executable]
"""The server's interpreter: tach-ls's own venv (`suites.prepare_tach`), as a user installs it; set in main()."""


def get(obj: Any, key: str) -> Any:
    return obj[key] if isinstance(obj, dict) else getattr(obj, key)


def cold_pytest(suite: Suite, repeat: int) -> list[float]:
    argv = [str(suite.python), "-m", "pytest", NODEID, "-q", "-p", "no:cacheprovider"]
    subprocess.run(argv, cwd=suite.root, env=suite.env, capture_output=True, check=False)  # .pyc files, as users have
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(argv, cwd=suite.root, env=suite.env, capture_output=True, check=False)
        times.append(time.perf_counter() - t0)
    return times


async def first_trees(suite: Suite, env: dict[str, str], sessions: int) -> list[float]:
    """Server start to first tree, for `sessions` sessions in a row sharing one (fresh) user cache."""
    times = []
    for _ in range(sessions):
        t0 = time.perf_counter()
        session = await start(suite.root, {"python": str(suite.python)}, env_extra=env, server_python=SERVER_PYTHON[0])
        try:
            await session.wait_for(protocol.TESTS_CHANGED)
            times.append(time.perf_counter() - t0)
        finally:
            await stop(session)
    return times


async def measure(suite: Suite, repeat: int) -> dict[str, Any]:
    import tempfile

    env = {k: v for k, v in suite.env.items() if k != "VIRTUAL_ENV"}
    env["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="tach-lsp-bench-")
    trees = await first_trees(suite, env, 1 + repeat)
    t0 = time.perf_counter()
    session = await start(suite.root, {"python": str(suite.python), "runOnSave": "file"}, env_extra=env, server_python=SERVER_PYTHON[0])
    try:
        await session.wait_for(protocol.TESTS_CHANGED)
        first_tree = time.perf_counter() - t0
        ready = await session.wait_for(protocol.STATUS, lambda p: get(p, "state") in ("ready", "failed"), timeout=120)
        warm_ready = time.perf_counter() - t0
        if get(ready, "state") != "ready":
            raise SystemExit(f"engine failed: {get(ready, 'detail')}")
        clicks = []
        for _ in range(repeat * 4):
            await asyncio.sleep(0.25)  # a click comes to an idle engine, its standby worker forked, as a person clicks
            c0 = time.perf_counter()
            result = await session.command(protocol.CMD_RUN_TESTS, {"tests": [NODEID]})
            clicks.append(time.perf_counter() - c0)
            assert get(result, "passed") == 1, result
        original = (suite.root / SAVE_FILE).read_text()
        assert BROKEN_TEST in original, f"{SAVE_FILE} changed upstream: pick another test"
        broken = original.replace(BROKEN_TEST, BROKEN_TEST + "\n    assert False, 'broken by bench/lsp.py'", 1)
        broken_line = broken.splitlines().index("    assert False, 'broken by bench/lsp.py'")
        session.open(SAVE_FILE, original)
        saves = []
        version = 1
        try:
            for _ in range(repeat):
                version += 1
                before = len(session.seen.get("textDocument/publishDiagnostics", []))
                s0 = time.perf_counter()
                session.save(SAVE_FILE, broken, version)
                await session.wait_for(
                    "textDocument/publishDiagnostics",
                    lambda p, n=before: session.seen["textDocument/publishDiagnostics"].index(p) >= n
                    and any(d.range.start.line == broken_line for d in p.diagnostics),
                )
                saves.append(time.perf_counter() - s0)
                version += 1
                session.save(SAVE_FILE, original, version)
                await session.wait_for(protocol.RUN_FINISHED, lambda p, n=len(session.seen.get(protocol.RUN_FINISHED, [])): True)
        finally:
            (suite.root / SAVE_FILE).write_text(original)
    finally:
        await stop(session)
    return {"first_tree_s": first_tree, "first_session_tree_s": trees[0], "later_trees_s": trees[1:], "ready_s": warm_ready, "clicks": clicks, "saves": saves}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    suite = prepare("flask")
    SERVER_PYTHON[0] = str(prepare_tach().python)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # the server's environment starts from ours: a user's writes .pyc files
    cold = cold_pytest(suite, args.repeat)
    lsp = asyncio.run(measure(suite, args.repeat))
    cold_med = statistics.median(cold)
    click_med = statistics.median(lsp["clicks"])
    save_med = statistics.median(lsp["saves"])
    print(f"flask {NODEID}")
    later = statistics.median(lsp["later_trees_s"])
    print(f"  start -> first tach/testsChanged:      first session {lsp['first_session_tree_s'] * 1000:.0f} ms, "
          f"later sessions median {later * 1000:.0f} ms over {len(lsp['later_trees_s'])}   (target < 300 ms)")  # fmt: skip
    print(f"  initialize -> zygote ready:            {lsp['ready_s'] * 1000:.0f} ms")
    print(f"  cold `python -m pytest NODEID`:        median {cold_med * 1000:.0f} ms over {len(cold)}")
    print(f"  tach.runTests round trip (warm):       median {click_med * 1000:.1f} ms over {len(lsp['clicks'])}")
    print(f"  ratio cold/warm:                       {cold_med / click_med:.0f}x   (target >= 100x)")
    print(f"  didSave -> diagnostic at the line:     median {save_med * 1000:.0f} ms over {len(lsp['saves'])}   (target < 100 ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
