"""Shared test helpers. See tests/unit (pure), tests/engine (real forks), tests/e2e (real LSP client)."""
