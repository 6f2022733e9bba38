"""`tach-ls run`: run tests through the warm zygote from a terminal or CI.

``add_arguments`` is called for every command while the parser is built, so
this module imports only the standard library at the top; the engine and
the reporters are imported inside ``run``. Exit codes are pytest's: 0 all
passed, 1 some failed, 2 interrupted (or errors during collection), 3
internal error, 4 usage error, 5 no tests collected.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("targets", nargs="*", metavar="PATH|NODEID", help="files, folders or node ids (default: testpaths)")
    parser.add_argument("-k", dest="keyword", default="", metavar="EXPR", help="as pytest's -k")
    parser.add_argument("-m", dest="markexpr", default="", metavar="EXPR", help="as pytest's -m")
    parser.add_argument("-n", dest="workers", type=int, default=None, metavar="WORKERS", help="parallel workers (default: CPU count)")
    parser.add_argument("--format", choices=("human", "json"), default="human", help="human report or one JSON event per line")
    parser.add_argument("--junit-xml", metavar="FILE", help="also write JUnit XML to FILE")
    parser.add_argument("--lcov", metavar="FILE", help="write the run's line coverage to FILE as LCOV (implies --coverage)")
    parser.add_argument("--coverage", action="store_true", help="collect per-test line coverage; print a coverage table (json: coverage events)")
    parser.add_argument("--affected", action="store_true", help="run only the tests the changes since the last recorded run can affect (implies --coverage)")
    parser.add_argument("--since", metavar="REV", help="with --affected: the changes are git's since REV (committed, staged, unstaged, untracked)")
    parser.add_argument("--explain", action="store_true", help="with --affected: print each selected test with its reason")
    parser.add_argument("--isolation", choices=("off", "auto", "strict"), default="auto", help="private /tmp, project overlay, network and /proc per worker: auto isolates what the system allows, strict refuses to run without all of it")
    parser.add_argument("--isolation-scope", choices=("batch", "test"), default="batch", help="batch: a module's tests share one private world, as its fixtures do; test: each test its own worker and world, as the project and /tmp were at the start")
    parser.add_argument("--show-writes", action="store_true", help="list the files each test wrote into the project (discarded by the isolation overlay)")
    parser.add_argument("--mode", choices=("fork", "spawn"), default="fork", help="fork from the warm zygote, or a fresh interpreter per batch")
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS", help="per-test time limit (default 300)")
    parser.add_argument("--python", metavar="PATH", help="the project's interpreter (default: VIRTUAL_ENV, .venv, venv, this one)")


def _collect_args(targets: list[str]) -> list[str]:
    """The files and folders to collect: the path part of each target, made absolute."""
    paths: list[str] = []
    for target in targets:
        path = os.path.abspath(target.split("::", 1)[0])
        if path not in paths:
            paths.append(path)
    return paths


def run(args: argparse.Namespace) -> int:
    from tach_ls.engine import interpreter
    from tach_ls.engine.runs import RunMode, RunRequest, RunSummary
    from tach_ls.engine.supervisor import EngineState, Supervisor
    from tach_ls.engine_factory import engine_config
    from tach_ls.report import Reporter
    from tach_ls.report.human import HumanReporter
    from tach_ls.report.junit import JunitReporter
    from tach_ls.report.ndjson import NdjsonReporter

    root = Path.cwd()
    for target in args.targets:
        if not os.path.exists(target.split("::", 1)[0]):
            sys.stderr.write(f"ERROR: file or directory not found: {target}\n")
            return 4
    try:
        python = interpreter.find(root, args.python)
        checked = interpreter.check(python)
    except interpreter.InterpreterError as exc:
        sys.stderr.write(f"tach-ls: {exc}\n")
        return 4
    reporters: list[Reporter] = [NdjsonReporter(sys.stdout) if args.format == "json" else HumanReporter(sys.stdout)]
    if args.junit_xml:
        reporters.append(JunitReporter(Path(args.junit_xml)))
    impact = _Impact(root, str(python), ".".join(map(str, checked.version)), args)
    if args.affected:
        selected = impact.select(args.targets)
        if selected is None:
            return 4
        if not selected:  # success, and every output format still says so (an empty run, exit 0)
            (sys.stderr if args.format == "json" else sys.stdout).write("tach-ls: no test is affected by the changes\n")
            impact.close()
            nothing = RunSummary(run_id=0, exit_code=0, counts={}, duration_s=0.0, results=[])
            for reporter in reporters:
                reporter.start(0)
                reporter.finish(nothing)
            return 0
        args.targets = selected
    config = engine_config(
        root, python, workers=args.workers, timeout=args.timeout,
        coverage=bool(args.coverage or args.lcov or args.affected),  # --affected: keeps the impact store precise
        mode=RunMode(args.mode),
        collect_args=_collect_args(args.targets),
        standby=False,  # one run and gone: a standby child would be wasted work
        isolation=args.isolation,
        isolation_scope=args.isolation_scope,
        show_writes=args.show_writes,
    )  # fmt: skip
    supervisor = Supervisor(config)
    supervisor.start()
    request = RunRequest(
        args=[_absolute(t) for t in args.targets], keyword=args.keyword, markexpr=args.markexpr, workers=args.workers
    )

    reader_left = threading.Event()  # `tach-ls run ... | head`: nobody reads the report any more

    def report(call: Callable[[Any], None], value: Any) -> None:
        if reader_left.is_set():
            return
        try:
            call(value)
        except BrokenPipeError:
            reader_left.set()
            handle.cancel()  # stop running what nobody will see

    def on_start(total: int) -> None:
        for reporter in reporters:
            report(reporter.start, total)

    def on_result(result: object) -> None:
        for reporter in reporters:
            report(reporter.result, result)

    handle = supervisor.run(request, on_result=on_result, on_start=on_start)
    signal.signal(signal.SIGTERM, _interrupt)  # a terminated run is an interrupted one: clean up the same way
    try:
        while not handle.done:
            try:
                handle.wait(0.5)
            except TimeoutError:
                continue
    except KeyboardInterrupt:
        handle.cancel()
        handle.wait(10)
    summary = handle.wait()
    if reader_left.is_set():
        _stdout_to_devnull()
        supervisor.shutdown()
        impact.record(summary.results)  # what did run is still true
        return 2
    if handle.total is None:
        for reporter in reporters:
            reporter.start(0)
    if summary.coverage is not None:
        _report_coverage(args, root, summary.coverage, reporters[0])
    for reporter in reporters:
        reporter.finish(summary)
    if args.show_writes and args.format == "human":
        _print_writes(summary.results)
    for warning in supervisor.warnings:
        sys.stderr.write(f"tach-ls warning: {warning}\n")
    if supervisor.status.state == EngineState.FAILED:
        sys.stderr.write(f"tach-ls: the zygote failed: {supervisor.status.detail}\n")
    supervisor.shutdown()
    impact.record(summary.results)
    return summary.exit_code


class _Impact:
    """--affected / --since / --explain, and recording every run in the impact store."""

    def __init__(self, root: Path, python: str, version: str, args: argparse.Namespace) -> None:
        from tach_ls import impact_session
        from tach_ls.index import WorkspaceIndex

        self.args = args
        self.root = root
        self.index = WorkspaceIndex(root, list(args.targets))
        self.env = impact_session.environment(root, python, self.index.cfg.inifile, version)
        try:
            self.store: Any = impact_session.open_store(self.index.root)
        except Exception as exc:  # a read-only checkout: run, just without impact data
            sys.stderr.write(f"tach-ls warning: impact store unavailable: {exc}\n")
            self.store = None

    def select(self, targets: list[str]) -> list[str] | None:
        """The affected node ids among `targets` (or the whole suite); None on a usage error."""
        from tach_ls import impact_session
        from tach_ls.impact_env import GitError, changed_since

        self.index.build()
        all_tests = [i.nodeid for i in self.index.items(include_deselected=False)]
        if self.store is None:
            return all_tests
        try:
            changed = changed_since(self.index.root, self.args.since) if self.args.since else None
        except GitError as exc:
            sys.stderr.write(f"tach-ls: --since {self.args.since}: {exc}\n")
            return None
        items = {i.nodeid: i for i in self.index.items()}
        selection = impact_session.select_affected(self.store, self.index.root, all_tests, self.env, changed, items=items)
        if self.args.explain:
            out = sys.stderr if self.args.format == "json" else sys.stdout
            out.write(selection.explain() + "\n")
            skipped = selection.total - len(selection.selected)
            out.write(f"  ({skipped} tests skipped: nothing they depend on changed)\n")
        # The engine runs node ids relative to the rootdir, as the index writes them.
        ids = impact_session.runnable_ids(selection.selected, items)
        return [str(self.index.root / n.split("::", 1)[0]) + ("::" + n.split("::", 1)[1] if "::" in n else "") for n in ids]

    def record(self, results: list[Any]) -> None:
        from tach_ls import impact_session

        if self.store is None:
            return
        try:
            impact_session.record_run(self.store, self.index.root, results, self.env)
        except Exception as exc:
            sys.stderr.write(f"tach-ls warning: could not record the run for impact analysis: {exc}\n")
        self.close()

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None


def _report_coverage(args: argparse.Namespace, root: Path, coverage: Any, main: object) -> None:
    """--lcov FILE, and the table (human, printed before the closing line) or one event per file (json)."""
    import json

    from tach_ls import coverage_data
    from tach_ls.report import coverage_table, lcov

    reports = coverage_data.analyze(root, coverage.files)
    if args.lcov:
        lcov.write(Path(args.lcov), reports)
    if args.format == "json":
        for rel, report in reports.items():
            event = {"event": "coverage", "path": rel, "covered": report.covered, "missed": report.missed}
            sys.stdout.write(json.dumps(event) + "\n")
    elif args.coverage:
        main.before_totals = coverage_table.render(reports)  # type: ignore[attr-defined]
    for note in coverage.notes:
        sys.stderr.write(f"tach-ls warning: coverage: {note}\n")


def _print_writes(results: list[Any]) -> None:
    wrote = [r for r in results if r.project_writes]
    if not wrote:
        return
    sys.stdout.write("\nwritten into the project (discarded by isolation):\n")
    for result in wrote:
        sys.stdout.write(f"  {result.nodeid}: {', '.join(result.project_writes)}\n")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _absolute(target: str) -> str:
    path, sep, rest = target.partition("::")
    return os.path.abspath(path) + sep + rest


def _stdout_to_devnull() -> None:
    """The reader of stdout left: later writes (and the interpreter's last flush) go nowhere, quietly."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)

