"""Command line: `tach-ls list | run | serve`.

Each subcommand lives in its own module and is imported only when chosen, so
`tach-ls list` never pays for pygls or the engine.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse


def _build_parser() -> argparse.ArgumentParser:
    import argparse  # not at the top: a listing answered from the cache never parses arguments (2 ms)

    parser = argparse.ArgumentParser(
        prog="tach-ls",
        description="pytest backend for editors and terminals: static index, warm zygote, forked workers.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p_list = sub.add_parser("list", help="list the tests of a workspace statically (no import)")
    p_list.add_argument("paths", nargs="*", metavar="PATH", help="files or folders (default: testpaths or .)")
    p_list.add_argument("--json", action="store_true", help="print the index as one JSON document")
    p_list.add_argument(
        "--all", action="store_true", help="include tests deselected by -k/-m in addopts (flagged in --json)"
    )
    p_list.add_argument("--no-cache", action="store_true", help="ignore and do not write the index cache")
    p_list.add_argument("--rootdir", metavar="DIR", help="as pytest's --rootdir")
    p_list.add_argument("-c", dest="inifile", metavar="FILE", help="as pytest's -c: the config file")

    p_run = sub.add_parser("run", help="run tests through the warm zygote")
    try:
        from tach_ls import run_command
    except ImportError:  # the engine is optional in a partial checkout
        run_command = None  # type: ignore[assignment]
    if run_command is not None:
        run_command.add_arguments(p_run)

    p_serve = sub.add_parser("serve", help="serve the Language Server Protocol over stdio")
    # Many LSP clients append --stdio; stdio is the only transport, so it is accepted and ignored.
    p_serve.add_argument("--stdio", action="store_true", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # `tach-ls list | head`: the reader left; that is not an error
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 2


def _main(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["list"]:
        from tach_ls import list_fastpath

        cached = list_fastpath.try_cached(argv)
        if cached is not None:
            return cached
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command == "list":
        from tach_ls.list_command import run_list

        return run_list(args, argv)
    if args.command == "run":
        from tach_ls import run_command

        return run_command.run(args)
    if args.command == "serve":
        from tach_ls.early import serve_stdio

        serve_stdio()
        return 0
    parser.print_help(sys.stderr)
    return 4


if __name__ == "__main__":  # python -m tach_ls.cli ... (python -m tach_ls serves LSP)
    raise SystemExit(main())
