"""Train live under a class's load: tabs that start run after run, while more students keep arriving, keep their
page, and a run that ends on its own redraws the page by itself (Start is on again, the model picker lists it).

Streamlit's message cache lost such tabs (3 of 5 within two minutes): a fragment rerun that starts before the
previous run's messages have left the server drops that run's blocks but keeps its references to cached elements,
which then point into blocks the browser never got, and the tab goes blank ("Bad delta path index 9", "'setIn'
cannot be called on an ElementNode"). .streamlit/config.toml turns the cache off."""
import re
import time

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect, sync_playwright

from attnviz.classroom import CHROMIUM_ARGS, page_state, start_button, streamlit_server

TABS, ARRIVING, SECONDS = 4, 3, 150  # tabs running runs, tabs open at once that just arrived, how long
STEPS = 50  # a few seconds a run
TIMEOUT_MS = 120_000


def open_settings(tab):
    if not tab.locator('[data-testid="stExpander"] details[open]').count():
        tab.locator('[data-testid="stExpander"] summary').first.click(timeout=TIMEOUT_MS)


def shows_ended(tab):
    """Whether the tab's run panel is the one of the run its URL names (right after Start the URL names the new run
    while the page still shows the previous one's panel), with its numbers and without a Stop."""
    name = re.search(r"[?&]run=([^&]+)", tab.url).group(1)
    heading = tab.locator('[data-testid="stMain"] h3', has_text=re.compile(rf"^Run {re.escape(name)}$"))
    return bool(heading.count() and tab.locator('[data-testid="stMetric"]').count()
                and not tab.locator(".st-key-train_stop").count())


def test_tabs_that_start_run_after_run_while_a_class_arrives_keep_their_page(chromium_path, tmp_path):
    errors = {}  # tab -> the frontend's uncaught errors
    with streamlit_server({"ATTNVIZ_USER_DIR": str(tmp_path)}) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True)
        tabs = [browser.new_page(viewport={"width": 1400, "height": 1000}) for _ in range(TABS)]
        for index, tab in enumerate(tabs):
            tab.on("pageerror", lambda error, index=index: errors.setdefault(index, []).append(str(error)))
            tab.goto(f"{url}/train?steps={STEPS}")
        arriving, ended, started = [], [0] * TABS, {}  # started: tab -> when its run's name reached its URL
        deadline = time.monotonic() + SECONDS
        while time.monotonic() < deadline:
            arriving.append(browser.new_page(viewport={"width": 1400, "height": 1000}))
            arriving[-1].goto(f"{url}/train", wait_until="commit")  # a student arrives; the oldest arrival leaves
            if len(arriving) > ARRIVING:
                arriving.pop(0).close()
            for index, tab in enumerate(tabs):
                if index in errors:
                    continue
                if index in started and not shows_ended(tab):  # going (its Stop is there), queued, or the page
                    if time.monotonic() - started[index] > TIMEOUT_MS / 1000:  # still shows the previous run
                        raise AssertionError(f"tab {index} at {tab.url}: its {STEPS}-step run not shown ended in "
                                             f"{TIMEOUT_MS / 1000:.0f} s; {page_state(tab)}")
                    continue
                ended[index] += index in started
                open_settings(tab)
                before = tab.url
                try:
                    start_button(tab).click(timeout=TIMEOUT_MS)  # the next run
                except PlaywrightError as error:  # say why Start stayed off: what the form and the run panel show
                    raise AssertionError(f"tab {index} at {tab.url}: Start stayed off; {page_state(tab)}") from error
                expect(tab).not_to_have_url(before, timeout=TIMEOUT_MS)  # ?run= names the new run
                started[index] = time.monotonic()
        assert errors == {}, errors
        assert min(ended) >= 1, ended  # every tab saw a run end on its own and started the next

        for other in tabs[1:] + arriving:
            other.close()
        tab = tabs[0]  # a run of the 30-second demo as it is, which solves its task: saved when it ends
        tab.goto(f"{url}/train")
        start_button(tab).click(timeout=TIMEOUT_MS)
        expect(tab).to_have_url(re.compile(r"[?&]run="), timeout=TIMEOUT_MS)
        name = re.search(r"[?&]run=([^&]+)", tab.url).group(1)
        expect(tab.get_by_text(f"Saved as {name}")).to_be_visible(timeout=TIMEOUT_MS)  # no click since Start
        expect(start_button(tab)).to_be_enabled(timeout=TIMEOUT_MS)  # the page redrew
        tab.get_by_role("combobox", name="Model").click()  # and its model picker lists the model (typed: the list
        tab.keyboard.type(name)  # of every tab's models is long)
        expect(tab.get_by_role("option", name=re.compile(rf"^{re.escape(name)} "))).to_be_visible(timeout=TIMEOUT_MS)
        assert tab.locator(".stException").count() == 0 and errors == {}
        browser.close()
