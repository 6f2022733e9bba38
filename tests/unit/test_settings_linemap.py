"""Settings precedence and validation; line mapping between text versions."""

from __future__ import annotations

from pathlib import Path

from tach_ls.linemap import LineMap
from tach_ls.settings import Settings, effective, merge


def test_editor_settings_are_validated() -> None:
    s, warnings = merge(Settings(), {"runOnSave": "file", "workers": 3, "coverage": "yes", "isolationScope": "module", "other.ext": 1}, "editor")
    assert (s.runOnSave, s.workers, s.coverage, s.isolationScope) == ("file", 3, False, "batch")
    assert warnings == ["editor: invalid value for coverage: 'yes'", "editor: invalid value for isolationScope: 'module'"]


def test_project_settings_win_over_the_editor(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.tach-ls]\nisolation = "strict"\nrun_on_save = "affected"\nisolation_scope = "test"\n')
    s, warnings = effective({"isolation": "off", "timeout": 5, "isolationScope": "batch"}, tmp_path)
    assert (s.isolation, s.runOnSave, s.timeout, s.isolationScope) == ("strict", "affected", 5.0, "test")
    assert warnings == []


def test_settings_that_are_not_an_object() -> None:
    s, warnings = merge(Settings(), ["not", "a", "dict"], "editor")  # type: ignore[arg-type]
    assert s == Settings() and warnings


def test_linemap_follows_inserted_lines_and_drops_edited_ones() -> None:
    old = ["a\n", "b\n", "c\n", "d\n"]
    new = ["x\n", "a\n", "b\n", "C\n", "d\n"]
    m = LineMap(old, new)
    assert [m(i) for i in range(4)] == [1, 2, None, 4]
    assert LineMap(old, list(old))(3) == 3
