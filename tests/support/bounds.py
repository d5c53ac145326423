"""Measuring what a hostile peer costs, for tests/test_client_hostile.py and test_reader_bounds.py."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager


class Peak:
    bytes = 0


@contextmanager
def peak_memory() -> Iterator[Peak]:
    """The tracemalloc peak (bytes) above what was allocated on entry, in ``.bytes`` on exit."""
    out = Peak()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        yield out
        out.bytes = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
