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
