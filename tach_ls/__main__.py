"""`python -m tach_ls`: serve LSP over stdio (same as `tach-ls serve`)."""

from tach_ls.cli import main

raise SystemExit(main(["serve"]))
