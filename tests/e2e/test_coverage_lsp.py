"""Coverage over LSP: with the `coverage` setting on, a run ends with `tach/coverage` per file, and hovers
on a source line list the tests that ran it. A real client over stdio, a real engine; nothing sleeps."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lsprotocol import types

from tach_ls import protocol
from tests.e2e.harness import Session, copy_project, start, stop

pytestmark = pytest.mark.e2e

CALC = "src/calc/__init__.py"  # def add (0-based line 0), its body (1), def div (4), its body (5)


def get(obj: Any, key: str) -> Any:
    return obj[key] if isinstance(obj, dict) else getattr(obj, key)


@pytest_asyncio.fixture
async def session(tmp_path: Path) -> AsyncIterator[Session]:
    root = copy_project("lsp_basic", tmp_path)
    s = await start(root, {"workers": 2, "coverage": True}, tmp_home=tmp_path / "home")
    yield s
    await stop(s)


async def test_run_sends_coverage_per_file_and_hover_lists_covering_tests(session: Session) -> None:
    result = await session.command(protocol.CMD_RUN_TESTS, {"tests": ["tests/test_calc.py::test_add"]})
    assert get(result, "passed") == 1
    gutter = await session.wait_for(protocol.COVERAGE, lambda p: get(p, "uri") == session.uri(CALC))
    assert 1 in get(gutter, "covered") and 0 in get(gutter, "covered")  # add's body ran; its def ran at import
    assert 5 in get(gutter, "missed")  # div's body did not
    hover = await session.client.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(session.uri(CALC)), types.Position(1, 4))
    )
    assert hover is not None and "tests/test_calc.py::test_add" in hover.contents.value
    # A second run that reaches div: the gutter for the file is sent again, now with div's body covered.
    await session.command(protocol.CMD_RUN_TESTS, {"tests": ["tests/test_calc.py::test_div"]})
    again = await session.wait_for(protocol.COVERAGE, lambda p: get(p, "uri") == session.uri(CALC) and 5 in get(p, "covered"))
    assert 1 not in get(again, "covered")  # the gutter shows the last run only


async def test_a_run_that_asks_for_coverage_gets_it_with_the_setting_off(tmp_path: Path) -> None:
    """VS Code's Coverage profile sends `"coverage": true` on one run; plain runs stay without gutters."""
    s = await start(copy_project("lsp_basic", tmp_path), {"workers": 2}, tmp_home=tmp_path / "home")
    try:
        plain = await s.command(protocol.CMD_RUN_TESTS, {"tests": ["tests/test_calc.py::test_add"]})
        assert get(plain, "passed") == 1 and not s.seen.get(protocol.COVERAGE)
        asked = await s.command(protocol.CMD_RUN_TESTS, {"tests": ["tests/test_calc.py::test_div[6-3-2]"], "coverage": True})
        assert get(asked, "passed") == 1
        gutter = await s.wait_for(protocol.COVERAGE, lambda p: get(p, "uri") == s.uri(CALC))
        assert 5 in get(gutter, "covered") and 1 in get(gutter, "missed")
        sent = len(s.seen[protocol.COVERAGE])
        again = await s.command(protocol.CMD_RUN_TESTS, {"tests": ["tests/test_calc.py::test_add"]})
        assert get(again, "passed") == 1 and len(s.seen[protocol.COVERAGE]) == sent, "a plain run sends no gutters"
    finally:
        await stop(s)
