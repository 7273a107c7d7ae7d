"""API key scopes, in their own module free of the database and settings, so that the command
line offers them without importing more than it needs."""

from __future__ import annotations

from typing import Literal, get_args

Scope = Literal["read", "write", "admin"]
SCOPES: tuple[Scope, ...] = get_args(Scope)  # each scope allows what the ones before it allow
