"""The real-browser fixtures of tests/browser, for the SDK's browser test (fixtures are shared by import)."""

from tests.browser.conftest import axe_script, browser, chromium_driver, pytest_runtest_makereport

__all__ = ["axe_script", "browser", "chromium_driver", "pytest_runtest_makereport"]
