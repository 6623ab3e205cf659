"""Waiting in tests for something another thread or process does: bounded polling that fails
with a message saying what never happened (no sleep is an assertion)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def poll(condition: Callable[[], Any], seconds: float, message: str | Callable[[], str]) -> Any:
    """Wait up to ``seconds`` for ``condition()`` to be truthy and return it; else fail with
    ``message`` (a text, or a function giving one, e.g. a process's log so far)."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            assert value, message() if callable(message) else message
            return value
        time.sleep(0.05)
