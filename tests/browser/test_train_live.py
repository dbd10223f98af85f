"""Train live in a real browser: start a preset run, watch the loss curve grow without touching the page (the
fragment polls the run), see the attention time-lapse, stop, and find the run saved; a typed value out of range
refused at its field; a configuration link that opens the same form in another browser."""
import re
import shutil

from playwright.sync_api import expect

from attnviz.training import checkpoint, checkpoint_folder

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
    assert (checkpoint_folder.USER_DIR / name / "meta.json").exists()
    shutil.rmtree(checkpoint_folder.USER_DIR / name, ignore_errors=True)


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
        for field, value in (("steps", "100000"), ("time_budget", "120")):  # time to look before Ada stops it:
            ada.locator(f".st-key-train_{field} input").fill(value)  # the preset's 350 steps end in seconds, and
            ada.locator(f".st-key-train_{field} input").press("Enter")  # on a loaded machine before her Stop
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
        expect(bob.locator('[data-testid="stMetricLabel"]', has_text=re.compile("^Status$"))).to_be_visible()  # not
        # get_by_text, which ignores case: the runs table has a column "status" (found twice, a strict-mode failure)
        expect(bob.locator(".st-key-train_stop")).to_have_count(0)

        ada.locator(".st-key-train_stop button").click()
        expect(ada.get_by_text(f"Saved as {name}")).to_be_visible(timeout=TIMEOUT_MS)
        assert checkpoint.load_checkpoint(name).meta["owner"] and bob.locator(".stException").count() == 0
    finally:
        ada.close(), bob.close()
        if name:
            shutil.rmtree(checkpoint_folder.USER_DIR / name, ignore_errors=True)


FORM = ["preset", "task", "architecture", "d_model", "n_heads", "n_encoder_layers", "n_decoder_layers", "d_ff",
        "steps", "time_budget", "batch_size", "lr", "warmup", "seed"]  # what the form shows, boxes and numbers


def form_values(page):
    """{key: the text in its box}: a select box shows its option, a number input its number."""
    return {key: page.locator(f".st-key-train_{key} input").input_value() for key in FORM}


def test_a_configuration_link_opens_the_same_form_in_a_fresh_browser(open_page, browser):
    page = open_page("train")
    page.get_by_role("combobox", name="Task").click()
    page.get_by_role("option", name="dates", exact=True).click()  # the preset follows: dates to ISO
    expect(page).to_have_url(re.compile(r"[?&]task=dates(&|$)"), timeout=TIMEOUT_MS)
    for key, value in (("steps", "123"), ("lr", "0.0025"), ("d_model", "48")):
        page.locator(f".st-key-train_{key} input").fill(value)
        page.locator(f".st-key-train_{key} input").press("Enter")
        expect(page).to_have_url(re.compile(rf"[?&]{key}={re.escape(value)}(&|$)"), timeout=TIMEOUT_MS)
    shared = form_values(page)
    assert shared["preset"].startswith("2 minutes: dates to ISO") and shared["steps"] == "123"

    context = browser.new_context(viewport={"width": 1400, "height": 1000})  # another student: nothing shared
    try:
        fresh = context.new_page()
        fresh.goto(page.url)
        for key, value in shared.items():
            expect(fresh.locator(f".st-key-train_{key} input")).to_have_value(value, timeout=TIMEOUT_MS)
        expect(fresh.locator(".stException")).to_have_count(0)
    finally:
        context.close()


def test_a_typed_value_out_of_range_reaches_the_page_and_blocks_start(open_page):
    page = open_page("train")
    field = page.locator(".st-key-train_n_encoder_layers input")
    field.fill("0")
    field.press("Enter")  # the browser sends it (the input has no bounds), the library refuses it
    expect(page.get_by_text("n_encoder_layers=0 is not possible")).to_be_visible(timeout=TIMEOUT_MS)
    start = page.get_by_role("button", name="Start training", exact=True)
    expect(start).to_be_disabled()
    expect(field).to_have_value("0")
    field.fill("1")
    field.press("Enter")
    expect(start).to_be_enabled(timeout=TIMEOUT_MS)
