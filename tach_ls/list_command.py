"""`tach-ls list`: the static index on stdout, as node ids or JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tach_ls.config import ConfigError
from tach_ls.index import WorkspaceIndex

# Errors that mean pytest would report a collection error too (exit 2, as pytest's "Interrupted").
FATAL_KINDS = {"syntax", "encoding", "io", "too-large", "collect", "config"}


def run_list(args: argparse.Namespace) -> int:
    try:
        index = WorkspaceIndex(Path.cwd(), args.paths, use_cache=not args.no_cache, inifile=args.inifile, rootdir=args.rootdir)
        index.build()
    except ConfigError as exc:
        print(f"tach-ls: configuration error: {exc}", file=sys.stderr)
        return 4
    items = index.items(include_deselected=args.all)
    errors = index.errors()
    out = sys.stdout
    if args.json:
        doc = {
            "rootdir": str(index.root),
            "inifile": str(index.cfg.inifile) if index.cfg.inifile else None,
            "tests": [i.to_json() for i in items],
            "errors": [e.to_json() for e in errors],
        }
        json.dump(doc, out, indent=None, separators=(",", ":"))
        out.write("\n")
    else:
        out.write("".join(f"{i.nodeid}\n" for i in items))
        for e in errors:
            where = f"{e.path}:{e.line}" if e.line else e.path
            print(f"tach-ls: {where}: {e.message}", file=sys.stderr)
    if any(e.kind in FATAL_KINDS for e in errors):
        return 2
    return 0 if items else 5
