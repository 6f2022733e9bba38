"""The server starts over stdio and answers the LSP lifecycle (a real client, a real process)."""

from __future__ import annotations

import sys

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "tach_ls"]))
async def client(lsp_client: LanguageClient):  # type: ignore[no-untyped-def]
    yield
    await lsp_client.shutdown_session()


@pytest.mark.e2e
async def test_initialize_answers_with_server_info(client: LanguageClient) -> None:
    result = await client.initialize_session(types.InitializeParams(capabilities=types.ClientCapabilities()))
    assert result.server_info is not None
    assert result.server_info.name == "tach-ls"
