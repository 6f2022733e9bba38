"""file:// URIs <-> paths (percent-encoding, no host), as editors send them."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, unquote, urlparse


def path_to_uri(path: Path | str) -> str:
    return "file://" + quote(str(Path(path).absolute()), safe="/:@")


def uri_to_path(uri: str) -> Path:
    parsed = urlparse(uri)
    if parsed.scheme not in ("file", ""):
        raise ValueError(f"not a file URI: {uri}")
    return Path(unquote(parsed.path))
