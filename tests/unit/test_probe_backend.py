"""The probe backend's bookkeeping (the rewrite itself is checked in the project interpreters, tests/engine)."""

from __future__ import annotations

import pytest

from tach_ls.engine import bytecode, probes

pytestmark = pytest.mark.skipif(not bytecode.supported(), reason="bytecode probes are for Python 3.11 and 3.12")


def backend() -> probes.ProbeBackend:
    return probes.ProbeBackend(lambda filename: 0 if filename == "/w/mod.py" else None)


def test_a_test_s_lines_are_taken_once_file_by_file() -> None:
    probe = backend()
    code = probe.rewrite(compile("a = 1\nb = 2\n", "/w/mod.py", "exec"))
    exec(code, {})
    lines, files = probe.take()
    assert sorted(lines) == [1, 2] and list(files) == [0, 0]
    assert list(probe.take()[0]) == []  # taken: empty until the code runs again
    assert probe.rewrite(compile("c = 3\n", "/elsewhere.py", "exec")).co_consts == (3, None)  # not recorded


def test_a_code_object_the_rewriter_refuses_makes_every_test_partial(monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: a code object left without probes silently records nothing, so impact analysis would
    trust an incomplete line set and could skip a test the change breaks. Two arms: rewritten, intact;
    refused, never intact again."""
    probe = backend()
    probe.rewrite(compile("a = 1\n", "/w/mod.py", "exec"))
    assert probe.intact() and probe.skipped == []

    def refuse(code: object, lines: object) -> object:
        raise bytecode.RewriteError("an unknown jump form")

    monkeypatch.setattr(bytecode, "_rewrite_one", refuse)
    probe.rewrite(compile("b = 2\n", "/w/mod.py", "exec"))
    assert not probe.intact() and "an unknown jump form" in probe.skipped[0]
