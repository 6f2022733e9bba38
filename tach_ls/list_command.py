"""`tach-ls list`: the static index on stdout, as node ids or JSON.

The full path builds the index (using the per-file cache); its output is
remembered with everything it depended on, so an unchanged workspace is
answered by `list_fastpath` without importing the indexer.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from tach_ls import list_fastpath
from tach_ls.config import ConfigError
from tach_ls.index import WorkspaceIndex

# Errors that mean pytest would report a collection error too (exit 2, as pytest's "Interrupted").
FATAL_KINDS = {"syntax", "encoding", "io", "too-large", "collect", "config"}


def run_list(args: argparse.Namespace, argv: Sequence[str] = ()) -> int:
    gc.disable()  # a one-shot process: what the build paused (see WorkspaceIndex.build) stays paused to the end
    try:
        index = WorkspaceIndex(
            Path.cwd(), args.paths, use_cache=not args.no_cache, inifile=args.inifile, rootdir=args.rootdir, parallel=True
        )
        index.build()
    except ConfigError as exc:
        print(f"tach-ls: configuration error: {exc}", file=sys.stderr)
        return 4
    out, err = io.StringIO(), io.StringIO()
    rc = render(index, args, out, err)
    out_bytes, err_bytes = out.getvalue().encode(), err.getvalue().encode()
    sys.stdout.buffer.write(out_bytes)
    sys.stdout.flush()
    sys.stderr.buffer.write(err_bytes)
    if argv and not args.no_cache:
        list_fastpath.store(argv, index.dependencies() + _own_sources(), out_bytes, err_bytes, rc)
    return rc


def render(index: WorkspaceIndex, args: argparse.Namespace, out: io.StringIO, err: io.StringIO) -> int:
    items = index.items(include_deselected=args.all)
    errors = index.errors()
    if args.json:
        doc = {
            "rootdir": str(index.root),
            "inifile": str(index.cfg.inifile) if index.cfg.inifile else None,
            "tests": [i.to_json() for i in items],
            "fixtures": [f.to_json() for f in index.fixtures()],
            "errors": [e.to_json() for e in errors],
        }
        json.dump(doc, out, indent=None, separators=(",", ":"))
        out.write("\n")
    else:
        out.write("".join(f"{i.nodeid}\n" for i in items))
        for e in errors:
            where = f"{e.path}:{e.line}" if e.line else e.path
            err.write(f"tach-ls: {where}: {e.message}\n")
    if any(e.kind in FATAL_KINDS for e in errors):
        return 2
    return 0 if items else 5


def _own_sources() -> list[tuple[str, bool, list_fastpath.Sig]]:
    """tach-ls's own modules: an upgrade or a local edit must not serve an old listing."""
    folder = Path(__file__).parent
    return [(str(p), False, list_fastpath.signature(str(p), False)) for p in sorted(folder.glob("*.py"))]
