"""One way to wait in the harness and the tests: poll a predicate until it holds or time runs out."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll(predicate: Callable[[], T], timeout: float, interval: float) -> T:
    """Call `predicate` every `interval` seconds until it returns something truthy or `timeout` passes; return the
    last value (falsy when time ran out), so callers can fail with what they saw last."""
    deadline = time.monotonic() + timeout
    while True:
        last = predicate()
        if last or time.monotonic() >= deadline:
            return last
        time.sleep(interval)
