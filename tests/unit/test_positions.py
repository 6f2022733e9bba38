"""LSP positions are UTF-16 columns on 0-based lines, whatever the characters on the line."""

from __future__ import annotations

from tach_ls.positions import byte_col_to_utf16, line_range, utf16_len, utf16_to_index


def test_utf16_lengths() -> None:
    assert utf16_len("abc") == 3
    assert utf16_len("é") == 1  # 2 bytes in UTF-8, 1 unit in UTF-16
    assert utf16_len("😀") == 2  # outside the BMP: a surrogate pair


def test_byte_columns_from_ast_become_utf16() -> None:
    line = "s = '😀é'; def"
    byte_col = len("s = '😀é'; ".encode())
    assert byte_col_to_utf16(line, byte_col) == len("s = '") + 2 + 1 + len("'; ")


def test_utf16_column_back_to_string_index() -> None:
    line = "a😀b"
    assert utf16_to_index(line, 0) == 0
    assert utf16_to_index(line, 3) == 2  # after the pair
    assert utf16_to_index(line, 99) == len(line)


def test_line_range_is_zero_based_and_covers_last_line() -> None:
    lines = ["@deco\n", "def test_é():\n", "    pass😀\r\n"]
    assert line_range(lines, 1, 3) == ((0, 0), (2, utf16_len("    pass😀")))
    assert line_range(lines, 3, 10) == ((2, 0), (2, utf16_len("    pass😀")))
