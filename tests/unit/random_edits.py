"""One random line edit of a source text, for the tests that compare incremental indexing with a full one."""

from __future__ import annotations

import random

OPS = ("insert", "insert", "delete", "replace")


def edit_one_line(text: str, rng: random.Random, snippets: list[str], ops: tuple[str, ...] = OPS) -> str:
    """`text` with one snippet inserted, one line deleted, or one line replaced by a snippet, at random."""
    lines = text.splitlines(keepends=True)
    pos = rng.randrange(len(lines) + 1)
    op = rng.choice(ops)
    if op == "insert":
        lines[pos:pos] = [rng.choice(snippets)]
    elif op == "delete" and pos < len(lines):
        del lines[pos]
    elif pos < len(lines):
        lines[pos] = rng.choice(snippets)
    return "".join(lines)
