"""A class arriving at once: twenty browser sessions open a freshly started server at the same moment, on the root
URL and on deep links with ?model=, and every one gets its page whole: the titled menu, the sidebar's model picker,
no exception, and no request to any machine but the app's own server.

Uses playwright's async API (its own Chromium) so that the twenty navigations really start together."""
import asyncio
import re
from urllib.parse import urlsplit

from playwright.async_api import async_playwright, expect

from attnviz.app import ui
from attnviz.classroom import CHROMIUM_ARGS

SESSIONS = 20
MODEL = "dates-transformer"  # a shipped model that is not the default one, so the link's choice is visible
DEEP_LINKS = ["explorer", "train", "positional", "decoding", "mechanics"]
TIMEOUT_MS = 240_000  # twenty sessions on a fresh server share two cores with the browser


def sessions():
    """(url path, query) for every session: the root URL with and without ?model=, and the deep links."""
    targets = [("", ""), ("", f"?model={MODEL}")] + [(path, f"?model={MODEL}") for path in DEEP_LINKS]
    return [targets[i % len(targets)] for i in range(SESSIONS)]


def expected_heading(url_path):
    return "attnviz" if url_path == "" else next(p.title for p in ui.PAGES if p.url_path == url_path)


async def check_session(page, base_url, url_path, query, foreign):
    """Load one session and check what it shows; `foreign` collects requests to any other host."""
    own_host = urlsplit(base_url).netloc
    page.on("request", lambda request: urlsplit(request.url).scheme in ("http", "https", "ws", "wss")
            and urlsplit(request.url).netloc != own_host and foreign.append(request.url))
    await page.goto(f"{base_url}/{url_path}{query}", timeout=TIMEOUT_MS)
    await expect(page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]')).to_be_attached(
        timeout=TIMEOUT_MS)
    await expect(page.locator("h1").first).to_have_text(expected_heading(url_path), timeout=TIMEOUT_MS)
    sidebar = page.locator('[data-testid="stSidebar"]')
    await expect(sidebar).to_contain_text("Trains on", timeout=TIMEOUT_MS)
    picker = page.get_by_role("combobox", name="Model")
    if query:
        await expect(picker).to_have_value(re.compile(f"^{re.escape(MODEL)} "), timeout=TIMEOUT_MS)
    else:
        await expect(picker).to_be_visible(timeout=TIMEOUT_MS)
    menu = page.locator(".st-key-menu")  # the menu lists every page by its title (attnviz.app.ui.sidebar)
    for info in ui.available_pages():
        await expect(menu.get_by_role("link").filter(has_text=info.title)).to_be_visible(timeout=TIMEOUT_MS)
    await expect(menu.get_by_role("link")).to_have_count(len(ui.available_pages()), timeout=TIMEOUT_MS)
    assert await page.locator('[data-testid="stException"]').count() == 0, url_path


async def open_all(chromium_path, base_url):
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True)
        try:
            contexts = [await browser.new_context(viewport={"width": 1200, "height": 900}) for _ in range(SESSIONS)]
            pages = [await context.new_page() for context in contexts]
            foreign = []
            results = await asyncio.wait_for(asyncio.gather(
                *(check_session(page, base_url, path, query, foreign) for page, (path, query) in zip(pages, sessions())),
                return_exceptions=True), timeout=2 * TIMEOUT_MS / 1000)
            return results, foreign
        finally:
            await browser.close()


def test_twenty_sessions_arriving_at_once_on_a_fresh_server(chromium_path, fresh_app_url):
    results, foreign = asyncio.run(open_all(chromium_path, fresh_app_url))
    failures = [(target, repr(result)[:500]) for target, result in zip(sessions(), results) if result is not None]
    assert not failures, f"{len(failures)} of {SESSIONS} sessions failed: {failures}"
    assert not foreign, f"requests left the machine: {sorted(set(foreign))[:10]}"
