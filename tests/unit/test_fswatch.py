"""The inotify gate in front of the freshness check: it may say "changed" too often, never too rarely."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tach_ls.engine import fswatch


@pytest.mark.parametrize(
    "change",
    ["write", "touch", "rename-into-place", "create", "delete"],
)
def test_every_kind_of_change_in_a_watched_folder_is_seen(tmp_path: Path, change: str) -> None:
    """The regression this gate could bring: a test run against stale code because an edit went unseen.
    Arms: an untouched folder reads as unchanged (the point of the gate); each way an editor or git changes a
    file reads as changed."""
    module = tmp_path / "mod.py"
    module.write_text("x = 1\n")
    watch = fswatch.DirWatch([str(tmp_path)])
    assert watch.active
    assert watch.changed() is False  # nothing yet
    if change == "write":
        module.write_text("x = 2\n")
    elif change == "touch":
        os.utime(module, (1, 1))
    elif change == "rename-into-place":
        (tmp_path / ".mod.py.swp").write_text("x = 3\n")
        watch.changed()
        os.replace(tmp_path / ".mod.py.swp", module)
    elif change == "create":
        (tmp_path / "new_test.py").write_text("")
    else:
        module.unlink()
    assert watch.changed() is True
    assert watch.changed() is False  # drained: the next question starts afresh
    watch.close()


def test_a_folder_that_cannot_be_watched_leaves_every_decision_to_the_stats(tmp_path: Path) -> None:
    watch = fswatch.DirWatch([str(tmp_path), str(tmp_path / "missing")])
    assert not watch.active
    assert watch.changed() is True and watch.changed() is True


def test_folders_of_files_and_folders(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    got = fswatch.folders_of([str(tmp_path / "pkg" / "a.py"), str(tmp_path / "pkg")], [str(tmp_path)])
    assert got == {str(tmp_path / "pkg"), str(tmp_path)}
