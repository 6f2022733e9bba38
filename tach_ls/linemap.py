"""Map line numbers between two versions of a text (disk vs buffer, buffer before vs after an edit).

Results are computed against the file a worker ran (the disk); the editor
shows a buffer that may differ and keeps changing. A line keeps its place
when it is unchanged between the versions and is dropped (None) when it
was edited or deleted, so a diagnostic is never shown on an unrelated line.
"""

from __future__ import annotations

import difflib

LineNo = int  # 0-based here, as on the wire


class LineMap:
    def __init__(self, old: list[str], new: list[str]) -> None:
        self._map: dict[int, int] = {}
        self.identity = old == new
        if self.identity:
            return
        matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
        for block in matcher.get_matching_blocks():
            for k in range(block.size):
                self._map[block.a + k] = block.b + k

    def __call__(self, line: LineNo) -> LineNo | None:
        if self.identity:
            return line
        return self._map.get(line)
