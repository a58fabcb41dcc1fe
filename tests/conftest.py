"""Says at the end of a run how many tests ran on the real MongoDB server (marked `mongo`).

With MONGODB_TEST_ONLY=1 only those tests run (scripts/test's second run, on a second server):
the others are deselected, so a `-m` given as well still applies to them.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest

_mongo_outcomes: Counter[str] = Counter()
_mongo_tests: set[str] = set()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("MONGODB_TEST_ONLY") == "1":
        others = [item for item in items if not item.get_closest_marker("mongo")]
        if others:
            config.hook.pytest_deselected(items=others)
            items[:] = [item for item in items if item.get_closest_marker("mongo")]
    _mongo_tests.update(item.nodeid for item in items if item.get_closest_marker("mongo"))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.nodeid not in _mongo_tests:
        return
    if report.when == "call" or (report.when == "setup" and not report.passed):
        outcome: str = report.outcome
        if hasattr(report, "wasxfail"):  # pytest marks a non-strict pass with it too
            outcome = "xpassed" if report.passed else "xfailed"

        _mongo_outcomes[outcome] += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _mongo_outcomes:
        return
    # scripts/test names the server it started; a MONGODB_TEST_URI given is named as such.
    server = os.environ.get("MONGODB_TEST_SERVER")
    if not os.environ.get("MONGODB_TEST_URI"):
        where = "no server"
    elif server:
        where = f"{server} at MONGODB_TEST_URI"
    else:
        where = "MONGODB_TEST_URI"
    counts = ", ".join(f"{count} {outcome}" for outcome, count in sorted(_mongo_outcomes.items()))
    terminalreporter.write_line(f"real MongoDB server tests ({where}): {counts}")
