"""A real `streamlit run app.py` server and headless Debian Chromium (through playwright) for browser tests.

Fixtures: `app_url` (one server per test module), `fresh_app_url` (one per test), `browser` (one Chromium
per module), `page` (a fresh tab), and `open_page(url_path)`, which loads a page of `app_url` and waits until
its script has finished running.
Where Chromium is missing the tests skip, except under CI (CI=true), where that is a failure.
"""
import os
import shutil

import pytest
from playwright.sync_api import expect, sync_playwright

from attnviz.classroom import CHROMIUM_ARGS, streamlit_server

LOAD_TIMEOUT_MS = 90_000


@pytest.fixture(scope="session")
def chromium_path():
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but Debian's chromium is not installed (.ci/run installs it with apt-get)")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); under CI this test must run")
    return path


@pytest.fixture(scope="module")
def app_url(chromium_path):
    with streamlit_server() as url:
        yield url


@pytest.fixture
def fresh_app_url(chromium_path):
    """A server of its own, for tests of what the first request to a server does."""
    with streamlit_server() as url:
        yield url


@pytest.fixture(scope="module")
def browser(chromium_path):
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    yield page
    page.close()


@pytest.fixture
def open_page(page, app_url):
    """open_page("explorer") loads that page ("" is Home) and returns once its script run has finished."""
    def open_(url_path):
        page.goto(f"{app_url}/{url_path}")
        expect(page.locator("h1").first).to_be_visible(timeout=LOAD_TIMEOUT_MS)
        expect(page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]')).to_be_attached(
            timeout=LOAD_TIMEOUT_MS)
        return page
    return open_
