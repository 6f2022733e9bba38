"""The workspace folders of one editor session (multi-root): one Workspace and Runner each."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tach_ls.runner import Runner
from tach_ls.settings import effective
from tach_ls.uris import uri_to_path
from tach_ls.workspace import Client, EngineFactory, Workspace


@dataclass
class Folder:
    ws: Workspace
    runner: Runner


class Folders:
    def __init__(self, client: Client, engine_factory: EngineFactory) -> None:
        self.client = client
        self.engine_factory = engine_factory
        self.by_root: dict[Path, Folder] = {}
        self.editor_settings: dict[str, object] | None = None
        self.warnings: list[str] = []

    def add(self, root: Path) -> Folder:
        root = root.resolve()
        if root not in self.by_root:
            settings, warnings = effective(self.editor_settings, root)
            self.warnings += warnings
            ws = Workspace(root, settings, self.client, self.engine_factory)
            self.by_root[root] = Folder(ws, Runner(ws))
        return self.by_root[root]

    def remove(self, root: Path) -> None:
        folder = self.by_root.pop(root.resolve(), None)
        if folder is not None:
            folder.ws.shutdown()

    def for_uri(self, uri: str) -> Folder | None:
        """The folder containing `uri` (the innermost one when folders nest)."""
        try:
            path = uri_to_path(uri).resolve()
        except ValueError:
            return None
        best: Folder | None = None
        for root, folder in self.by_root.items():
            if path == root or root in path.parents:
                if best is None or len(str(root)) > len(str(best.ws.root)):
                    best = folder
        return best

    def update_settings(self, editor: dict[str, object] | None) -> list[str]:
        self.editor_settings = editor
        warnings: list[str] = []
        for folder in self.by_root.values():
            settings, more = effective(editor, folder.ws.root)
            warnings += more
            folder.ws.apply_settings(settings)
        return warnings

    def all(self) -> list[Folder]:
        return list(self.by_root.values())

    def shutdown(self) -> None:
        for folder in self.by_root.values():
            folder.ws.shutdown()
