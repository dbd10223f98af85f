"""Train live in a real browser: start a preset run, watch the loss curve grow without touching the page (the
fragment polls the run), see the attention time-lapse, stop, and find the run saved."""
import re
import shutil

from playwright.sync_api import expect

from attnviz.training import checkpoint

POINTS = "document.querySelector('.st-key-curve_loss .js-plotly-plot')?._fullData?.[0]?._length ?? 0"  # points drawn
TIMEOUT_MS = 120_000


def test_a_preset_run_moves_the_curve_and_is_saved(open_page, tmp_path):
    page = open_page("train")
    expect(page.locator(".st-key-train_name input")).not_to_have_value("", timeout=TIMEOUT_MS)  # the suggested name
    name = page.locator(".st-key-train_name input").input_value()
    page.locator(".st-key-train_start button").click()
    expect(page).to_have_url(re.compile(rf"[?&]run={re.escape(name)}"), timeout=TIMEOUT_MS)

    page.wait_for_function(f"{POINTS} > 0", timeout=TIMEOUT_MS)
    first = page.evaluate(POINTS)
    page.wait_for_function(f"{POINTS} > {first}", timeout=TIMEOUT_MS)  # redrawn by the fragment on its own
    expect(page.locator(".st-key-lapse_heatmap .js-plotly-plot")).to_be_visible(timeout=TIMEOUT_MS)
    page.screenshot(path=tmp_path / "train-live.png", full_page=True)

    page.locator(".st-key-train_stop button").click()
    expect(page.get_by_text(f"Saved as {name}")).to_be_visible(timeout=TIMEOUT_MS)
    page.get_by_role("combobox", name="Model").click()  # the model picker lists it at once
    expect(page.get_by_role("option", name=re.compile(rf"^{re.escape(name)} "))).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator(".stException")).to_have_count(0)
    assert (checkpoint.USER_DIR / name / "meta.json").exists()
    shutil.rmtree(checkpoint.USER_DIR / name, ignore_errors=True)


def loaded(page, url):
    page.goto(url)
    expect(page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]')).to_be_attached(
        timeout=TIMEOUT_MS)
    return page


def test_a_run_belongs_to_the_browser_that_started_it(browser, app_url):
    """Two browsers (two playwright contexts, two cookie jars): Ada starts a run, keeps its Stop after a reload;
    Bob opens her link and watches it, without a Stop; the link carries no owner."""
    ada, bob = (browser.new_page(viewport={"width": 1400, "height": 1000}) for _ in range(2))
    name = None
    try:
        loaded(ada, f"{app_url}/train")
        expect(ada.locator(".st-key-train_name input")).not_to_have_value("", timeout=TIMEOUT_MS)
        ada.locator(".st-key-train_time_budget input").fill("120")  # time to look before Ada stops it
        ada.locator(".st-key-train_time_budget input").press("Enter")
        name = ada.locator(".st-key-train_name input").input_value()
        ada.locator(".st-key-train_start button").click()
        expect(ada).to_have_url(re.compile(rf"[?&]run={re.escape(name)}"), timeout=TIMEOUT_MS)
        expect(ada.locator(".st-key-train_stop button")).to_be_visible(timeout=TIMEOUT_MS)
        link = ada.url

        ada.reload()  # the same browser: the run is still hers
        expect(ada.locator(".st-key-train_stop button")).to_be_visible(timeout=TIMEOUT_MS)

        loaded(bob, link)  # another student opens the shared link
        expect(bob.get_by_role("heading", name=re.compile(rf"^Run {re.escape(name)} by student "))).to_be_visible(
            timeout=TIMEOUT_MS)
        expect(bob.get_by_text("Status")).to_be_visible()
        expect(bob.locator(".st-key-train_stop")).to_have_count(0)

        ada.locator(".st-key-train_stop button").click()
        expect(ada.get_by_text(f"Saved as {name}")).to_be_visible(timeout=TIMEOUT_MS)
        assert checkpoint.load_checkpoint(name).meta["owner"] and bob.locator(".stException").count() == 0
    finally:
        ada.close(), bob.close()
        if name:
            shutil.rmtree(checkpoint.USER_DIR / name, ignore_errors=True)
