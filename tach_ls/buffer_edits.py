"""What the index keeps about the buffers being edited, so a keystroke costs a re-parse of one function.

`WorkspaceIndex.update_file(path, text)` asks this, in order:

- `parse`: the buffer's tree, re-parsed incrementally from the last buffer of
  the same file (`incremental_parse`); the last good parse is kept through a
  syntax error, so the edit that fixes it is incremental again;
- `moved`: when the edit lay inside the body of a test or a fixture (bodies
  discovery never reads), the last index of the file with its lines moved
  (`incremental_parse.BodyEdit`, `model.moved_lines`): no discovery at all;
- `memo`: otherwise the discovery memo of the file being edited
  (`discovery_memo`), and `discovered` afterwards records the new index.

The memo and the movable index belong to one file at a time and are dropped
(`forget`) whenever any other file, or this one on disk, changes: both may
depend on names read from other workspace files.
"""

from __future__ import annotations

import ast
from collections.abc import Callable

from tach_ls.discovery_memo import DiscoveryMemo
from tach_ls.incremental_parse import Parsed, reparse
from tach_ls.model import FileIndex, RelPath, moved_lines
from tach_ls.module_scan import is_fixture_decorator


class BufferEdits:
    """The last parse per buffer, and the memo and movable index of the file being edited."""

    def __init__(self, is_test_name: Callable[[str], bool], max_bytes: int) -> None:
        self._is_test_name = is_test_name
        self._max_bytes = max_bytes
        self._parsed: dict[RelPath, Parsed] = {}
        self._memo: tuple[RelPath, DiscoveryMemo] | None = None
        self._movable: FileIndex | None = None  # the memo file's last index, if the next edit may just move it

    def forget(self, keep: RelPath | None = None) -> None:
        """Drop the memo and the movable index, unless they are `keep`'s."""
        if self._memo is not None and self._memo[0] != keep:
            self._memo = None
            self._movable = None

    def parse(self, rel: RelPath, text: str | bytes | None) -> ast.Module | None:
        """The buffer's tree, re-parsing only what changed since the last buffer of this file."""
        if not isinstance(text, str) or len(text) > self._max_bytes:
            self._parsed.pop(rel, None)
            return None
        try:
            parsed, _incremental = reparse(self._parsed.get(rel), text)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            # Keep the last good parse: the next edit (the user finishing the line)
            # is then re-parsed incrementally against it. discover() reports the error.
            return None
        self._parsed[rel] = parsed
        return parsed.tree

    def moved(self, rel: RelPath, previous: FileIndex | None) -> FileIndex | None:
        """The index of `rel` without discovery, when the last parse's edit lay inside a test's or fixture's body.

        Discovery never reads such a body, so the last index holds, moved by
        the edit's change in line count. Only an index discovered from this
        buffer qualifies: its lines are all this file's.
        """
        parsed = self._parsed.get(rel)
        edit = parsed.body_edit if parsed is not None else None
        if edit is None or previous is None or previous is not self._movable or self._memo is None or self._memo[0] != rel:
            return None
        function = edit.function
        if function is not None and not (self._is_test_name(function.name) or any(is_fixture_decorator(d) for d in function.decorator_list)):
            return None
        moved = moved_lines(previous, edit.end, edit.new_end, edit.delta) if edit.delta or edit.end != edit.new_end else previous
        self._movable = moved
        return moved

    def memo(self, rel: RelPath, tree: ast.Module | None) -> DiscoveryMemo | None:
        """The discovery memo for a buffer re-index of `rel`, begun on `tree`."""
        parsed = self._parsed.get(rel)
        if tree is None or parsed is None:
            return None
        if self._memo is None:
            self._memo = (rel, DiscoveryMemo())
        memo = self._memo[1]
        memo.begin(parsed.lines, tree, self._is_test_name)
        return memo

    def discovered(self, fi: FileIndex, memo: DiscoveryMemo | None) -> None:
        """The buffer's new index: the next body edit may move it if all its lines are this file's."""
        self._movable = fi if memo is not None and not memo.foreign_lines and not fi.errors else None
