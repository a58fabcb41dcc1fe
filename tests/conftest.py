"""The tests marked `mongo` need a real MongoDB server (MONGODB_TEST_URI; `bash scripts/test`
starts one): without it they are skipped for one reason, in one line of `-rs`, and failed in
CI (CI=true), which must run them. A run ends saying how many of them ran, on which server.

With MONGODB_TEST_ONLY=1 only those tests run (scripts/test's second run, on a second server):
the others are deselected, so a `-m` given as well still applies to them.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest

NO_SERVER = (
    "MONGODB_TEST_URI is not set: the tests marked mongo need a real MongoDB server "
    "(bash scripts/test starts FerretDB and mongo-java-server)"
)
_mongo_outcomes: Counter[str] = Counter()
_mongo_tests: set[str] = set()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("MONGODB_TEST_ONLY") == "1":
        others = [item for item in items if not item.get_closest_marker("mongo")]
        if others:
            config.hook.pytest_deselected(items=others)
            items[:] = [item for item in items if item.get_closest_marker("mongo")]
    _mongo_tests.update(item.nodeid for item in items if item.get_closest_marker("mongo"))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # Raised here, before any fixture, so every skip has this one place and reason.
    if item.get_closest_marker("mongo") and not os.environ.get("MONGODB_TEST_URI"):
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run this test on a real server: {NO_SERVER}", pytrace=False)
        pytest.skip(NO_SERVER)


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
        where = "none: MONGODB_TEST_URI is not set"
    elif server:
        where = f"{server} at MONGODB_TEST_URI"
    else:
        where = "MONGODB_TEST_URI"
    counts = ", ".join(f"{count} {outcome}" for outcome, count in sorted(_mongo_outcomes.items()))
    terminalreporter.write_line(f"real MongoDB server tests ({where}): {counts}")
