"""The environment variables the CLI reads (each also a root option), named in one place that
imports nothing: `headrace --version` and `--help` need the names, not the rest of the CLI."""

from __future__ import annotations

__all__ = ["SERVER_ENV", "TOKEN_ENV", "WORKSPACE_ENV"]

WORKSPACE_ENV = "HEADRACE_WORKSPACE"
SERVER_ENV = "HEADRACE_SERVER_URL"
TOKEN_ENV = "HEADRACE_TOKEN"  # noqa: S105 (the variable's name, not a secret)
