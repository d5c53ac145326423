"""No skip passes CI unnoticed: under ``NUTBRIDGE_REQUIRE_INTEROP=1`` any skipped test fails
the session unless its reason is on :data:`ALLOWED_SKIPS`.

``realnut.require*()`` and ``realnut.prerequisite`` already fail (instead of skipping) a test
whose prerequisite is missing when the flag is set. This plugin is the backstop for everything
that does not go through them: a ``pytest.skip``/``skipif``/``importorskip`` added later, a skip
raised by a plugin or a fixture, a module skipped at collection. At the end of the run it lists
each such skip under "unexpected skips" and turns pytest's exit status into 1 (tests failed).
Without the flag it only applies the ``prerequisite`` markers; skips are reported as usual.

Registered by tests/conftest.py and tests_ha/conftest.py (:func:`register`). Under pytest-xdist
the workers apply the markers; the controller, which receives every report, does the counting.
"""

from __future__ import annotations

import re

import pytest

from tests.support import realnut

#: Skips CI accepts: regular expression (``re.search`` on the skip reason) -> why this skip is
#: not a hole in the evidence. Keep it empty unless a machine CI legitimately runs on cannot
#: provide something (and say which machine, and why); every entry weakens "no test skips in CI".
ALLOWED_SKIPS: dict[str, str] = {}

PLUGIN_NAME = "nutbridge-skip-policy"


def register(config: pytest.Config) -> None:
    """Register the plugin once per session (both conftests may be loaded)."""
    if not config.pluginmanager.has_plugin(PLUGIN_NAME):
        config.addinivalue_line(
            "markers", "prerequisite(what, found): skip (locally) or fail (NUTBRIDGE_REQUIRE_INTEROP=1) "
                       "the test when found is false; use realnut.prerequisite()")
        config.pluginmanager.register(SkipPolicy(config), PLUGIN_NAME)


def skip_reason(report: pytest.CollectReport | pytest.TestReport) -> str:
    longrepr = report.longrepr  # (path, line, "Skipped: reason") for a skip (a list via xdist?)
    reason = str(longrepr[2]) if isinstance(longrepr, tuple | list) and len(longrepr) == 3 else str(longrepr)
    return reason.removeprefix("Skipped: ")


def allowed(reason: str) -> bool:
    return any(re.search(pattern, reason) for pattern in ALLOWED_SKIPS)


class SkipPolicy:
    def __init__(self, config: pytest.Config) -> None:
        # counted where the reports meet: in the only process, or in xdist's controller
        self.enforce = realnut.REQUIRE and not hasattr(config, "workerinput")
        self.unexpected: list[tuple[str, str]] = []

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        realnut.check_prerequisite_marks(item)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._count(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self._count(report)

    def _count(self, report: pytest.CollectReport | pytest.TestReport) -> None:
        if not (self.enforce and report.skipped) or hasattr(report, "wasxfail"):
            return
        reason = skip_reason(report)
        if not allowed(reason):
            self.unexpected.append((report.nodeid, reason))

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.unexpected:
            return
        tr = terminalreporter
        tr.section("unexpected skips (NUTBRIDGE_REQUIRE_INTEROP=1)", red=True, bold=True)
        for nodeid, reason in self.unexpected:
            tr.line(f"SKIPPED {nodeid or '<collection>'}: {reason}", red=True)
        tr.line(f"{len(self.unexpected)} skip(s) not on ALLOWED_SKIPS (tests/support/skip_policy.py): "
                "the run fails", red=True, bold=True)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.unexpected and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
