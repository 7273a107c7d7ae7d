"""A test whose server (PostgreSQL, Redis, S3, Ray, Chromium) is missing: skipped, but failed under CI."""

from __future__ import annotations

import os

import pytest


def unavailable(message: str) -> None:
    """Skip a test whose server is missing, except under CI=true, where that is a failure."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)
