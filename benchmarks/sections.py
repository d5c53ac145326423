"""docs/benchmarks.md is shared: run.py writes the C upsd comparison above KEEP_MARKER, and
each other benchmark replaces only its own ``## ...`` section below it."""

from __future__ import annotations

import math
import signal
import statistics
import subprocess
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

KEEP_MARKER = "<!-- sections below are written by other benchmarks; run.py keeps them -->"


def write_section(path: Path, section: str, text: str) -> None:
    """Replace the section headed ``section`` (after the KEEP marker) by ``text``, or append it;
    everything else in the file is kept."""
    doc = path.read_text() if path.exists() else ""
    if KEEP_MARKER not in doc:
        doc = doc.rstrip("\n") + "\n\n" + KEEP_MARKER + "\n"
    head, tail = doc.split(KEEP_MARKER, 1)
    start = tail.find(section)
    if start >= 0:
        nxt = tail.find("\n## ", start + len(section))
        tail = tail[:start] + text.rstrip("\n") + ("\n" + tail[nxt:] if nxt >= 0 else "\n")
    else:
        tail = tail.rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n"
    path.write_text(head + KEEP_MARKER + tail)


def code_version(src: Path = REPO / "bridge") -> str:
    """The commit measured, and whether the bridge's sources differ from it."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", str(src))
    return f"commit {head}" + (" + uncommitted changes to the bridge's sources" if dirty else "")


def stop_processes(procs: list[subprocess.Popen[bytes]], timeout: float = 10) -> None:
    """SIGTERM each running process in order, then wait for all (kill after ``timeout``)."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def median_max(values: list[float | None], never: str, fmt: Callable[[float], str]) -> str:
    """A table cell: the median of the runs that got a value (and their max), ``fmt``-ed;
    ``never`` when none did, and how many did not when only some did; "—" without runs."""
    nums = [v for v in values if v is not None]
    if not values:
        return "—"
    if not nums:
        return never
    text = fmt(statistics.median(nums)) + ("" if len(nums) == 1 else f" (max {fmt(max(nums))})")
    if len(nums) < len(values):
        text += f"; {never} in {len(values) - len(nums)} of {len(values)}"
    return text


def publish(path: Path, section: str, text: str, t0: float, what: str) -> None:
    """Print the report ``text``, write it as ``section`` of ``path`` and say so (seconds since ``t0``)."""
    print(text)
    write_section(path, section, text)
    print(f"[{time.monotonic() - t0:5.0f} s] wrote the {what} section of {path}")


def until(cond: Callable[[], bool], timeout: float, poll: float) -> float | None:
    """Seconds until ``cond()`` holds, asked every ``poll`` s; None if not within ``timeout``."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if cond():
            return time.monotonic() - t0
        time.sleep(poll)
    return None


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile ``p`` (0-100) of ``values`` in any order; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


#: prose line width of the reports in docs/benchmarks.md
WIDTH = 100


def fill(text: str) -> str:
    """A paragraph of report prose, wrapped for docs/benchmarks.md."""
    return textwrap.fill(text, WIDTH, break_on_hyphens=False)
