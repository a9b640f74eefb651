"""Fixtures for tests in a real headless Chromium: the checked binaries, axe-core, and one fresh browser per test.

A missing binary or npm fails the tests with what to run; it never skips them. Mark browser test modules with
`pytestmark = pytest.mark.browser`.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from tests.browser.harness import (
    Binaries,
    HarnessError,
    check_binaries,
    clear_artefacts,
    install_axe,
    screenshot,
    start_browser,
)


@pytest.fixture(scope="session")
def chromium_driver() -> Binaries:
    try:
        return check_binaries()
    except HarnessError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="session")
def axe_script() -> str:
    """Installs the pinned axe-core before the first test, so a failing npm shows at setup, not mid-test."""
    try:
        return str(install_axe())
    except HarnessError as error:
        pytest.fail(str(error), pytrace=False)


_failed = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remembers a failed test body, so the browser fixture can keep a screenshot of what the page showed."""
    report = yield
    if report.when == "call" and report.failed:
        item.stash[_failed] = True
    return report


@pytest.fixture
def browser(
    request: pytest.FixtureRequest, chromium_driver: Binaries, axe_script: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebDriver]:
    """A new headless Chromium per test (no cookies or storage shared); stopped, and its processes gone, after."""
    clear_artefacts()
    started = start_browser(chromium_driver, tmp_path_factory.mktemp("chromium-profile"))
    print(f"\n[browser] chromium {chromium_driver.version} ready in {started.seconds_to_start:.2f} s")
    try:
        yield started.driver
        if request.node.stash.get(_failed, False):
            screenshot(started.driver, "on-failure")
    finally:
        started.stop()
