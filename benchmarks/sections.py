"""docs/benchmarks.md is shared: run.py writes the C upsd comparison above KEEP_MARKER, and
each other benchmark replaces only its own ``## ...`` section below it."""

from __future__ import annotations

import signal
import subprocess
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
