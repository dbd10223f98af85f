"""A real `streamlit run app.py` server and headless Debian Chromium (through playwright) for browser tests.

Fixtures: `app_url` (one server per test module), `fresh_app_url` (one per test), `browser` (one Chromium
per module), `page` (a fresh tab), and `open_page(url_path)`, which loads a page of `app_url` and waits until
its script has finished running.
Where Chromium is missing the tests skip, except under CI (CI=true), where that is a failure.
"""
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
START_TIMEOUT = 120  # seconds: the first start imports torch on a busy machine
LOAD_TIMEOUT_MS = 90_000


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port, log_file):
    """Start `streamlit run app.py` on 127.0.0.1:port; return the process once /_stcore/health says ok."""
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
               "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {process.returncode}: {Path(log_file.name).read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as response:
                if response.read() == b"ok":
                    return process
        except OSError:
            pass
        time.sleep(0.5)
    stop_server(process)
    raise RuntimeError(f"streamlit did not become healthy in {START_TIMEOUT} s: {Path(log_file.name).read_text()}")


def stop_server(process):
    """SIGTERM, then wait for the process to exit (SIGKILL if it will not), so the port is free again."""
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def chromium_path():
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but Debian's chromium is not installed (.ci/run installs it with apt-get)")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); under CI this test must run")
    return path


@contextlib.contextmanager
def running_app(log_dir):
    """The base URL of a fresh `streamlit run app.py`, stopped on exit; its output goes to log_dir/server.log."""
    with open(log_dir / "server.log", "w+") as log_file:
        port = free_port()
        process = start_server(port, log_file)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            stop_server(process)


@pytest.fixture(scope="module")
def app_url(chromium_path, tmp_path_factory):
    with running_app(tmp_path_factory.mktemp("streamlit")) as url:
        yield url


@pytest.fixture
def fresh_app_url(chromium_path, tmp_path):
    """A server of its own, for tests of what the first request to a server does."""
    with running_app(tmp_path) as url:
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
