"""LSP positions: 0-based lines and UTF-16 code-unit columns, from the index's 1-based lines.

The index speaks Python's language (1-based lines, columns in UTF-8 bytes as
`ast` gives them); the wire speaks LSP's. All conversion happens here, against
the text the editor has (the buffer, not the disk), so a non-ASCII line never
puts a lens or diagnostic in the wrong place.
"""

from __future__ import annotations

LineNo = int


def utf16_len(text: str) -> int:
    """Length of `text` in UTF-16 code units (characters outside the BMP count twice)."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def byte_col_to_utf16(line_text: str, byte_col: int) -> int:
    """A column in UTF-8 bytes (as `ast` reports) to UTF-16 code units."""
    prefix = line_text.encode("utf-8")[:byte_col].decode("utf-8", errors="ignore")
    return utf16_len(prefix)


def utf16_to_index(line_text: str, utf16_col: int) -> int:
    """A UTF-16 column (from the client) to an index into the Python string."""
    units = 0
    for index, ch in enumerate(line_text):
        if units >= utf16_col:
            return index
        units += 2 if ord(ch) > 0xFFFF else 1
    return len(line_text)


def line_range(lines: list[str], first: LineNo, last: LineNo) -> tuple[tuple[int, int], tuple[int, int]]:
    """((line, col), (line, col)) in LSP units covering 1-based lines first..last, whole lines."""
    start = max(first - 1, 0)
    end = max(min(last - 1, len(lines) - 1), start)
    end_text = lines[end] if end < len(lines) else ""
    return (start, 0), (end, utf16_len(end_text.rstrip("\r\n")))
