"""The attention explorer's downloads in a real browser: the files carry the captured weights."""
import io
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from attnviz import TransformerConfig, build_model
from attnviz.data.tasks import make_task
from attnviz.interpret.input_run import run_input
from attnviz.training import checkpoint, checkpoint_folder

LOAD_TIMEOUT_MS = 90_000



@pytest.fixture
def small_model():
    """An untrained 1+1-layer Transformer for a small reverse task, saved as "export-test"."""
    task = make_task("reverse", alphabet="abc", min_len=3, max_len=6, n_train=50, n_val=10, n_test=10)
    vocab = task.tokenizer.vocab_size
    model = build_model(TransformerConfig(vocab, vocab, d_model=8, n_heads=2, d_ff=16, max_len=32))
    path = checkpoint.save_checkpoint(checkpoint_folder.USER_DIR / "export-test", model, task.tokenizer,
                                      {"task": task.spec()})
    yield "export-test"
    shutil.rmtree(path, ignore_errors=True)


def open_export_tab(page):
    page.get_by_role("tab", name="Export").click()
    expect(page.locator(".st-key-download_csv")).to_be_visible()


def download(page, key, attempts=3):
    """Click a download button until the file comes. A click that lands while the page reruns is lost, and a
    button left disabled (seen in some full CI runs after a fresh server's first rerun) is cured by a reload."""
    button = page.locator(f".st-key-{key} button").first
    for attempt in range(attempts):
        try:
            expect(button).to_be_enabled(timeout=30_000)
            with page.expect_download(timeout=20_000) as info:
                button.click()
            return open(info.value.path(), "rb").read()
        except (PlaywrightTimeout, AssertionError):
            if attempt == attempts - 1:
                raise
            page.reload()
            open_export_tab(page)


def test_explorer_exports_the_captured_weights(open_page, small_model):
    page = open_page("explorer?model=export-test&text=abcab")
    open_export_tab(page)
    picked = checkpoint.load_checkpoint(checkpoint_folder.USER_DIR / "export-test")
    run = run_input(picked.model, picked.task(), "abcab")

    table = pd.read_csv(io.BytesIO(download(page, "download_csv")))
    assert len(table) == sum(pattern[0].numel() for pattern in run.cache.values())
    first = table[(table["name"] == "encoder.layers.0.self_attn.hook_pattern") & (table["head"] == 1)]
    assert list(first["key_token"][:6]) == ["a", "b", "c", "a", "b", "<eos>"]
    assert np.allclose(first["weight"], run.cache["encoder.layers.0.self_attn.hook_pattern"][0, 1].flatten(), atol=1e-6)

    arrays = np.load(io.BytesIO(download(page, "download_npz")))
    assert set(arrays.files) == set(run.cache)
    for name, pattern in run.cache.items():
        assert np.allclose(arrays[name], pattern.numpy(), atol=1e-6)


def script_done(page):
    expect(page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]')).to_be_attached(
        timeout=LOAD_TIMEOUT_MS)


def chart_title(page, key):
    return page.locator(f".st-key-{key} .gtitle").first.text_content(timeout=LOAD_TIMEOUT_MS)


def test_clicking_a_head_of_the_grid_zooms_it(open_page, small_model):
    page = open_page("explorer?model=export-test&text=abcab&attention=encoder+self&layer=0&head=0")
    assert chart_title(page, "zoom").endswith("layer 0, head 0")
    target = page.locator(".st-key-grid .scatterlayer .trace").nth(1).locator("path.point")  # layer 0, head 1
    box = target.bounding_box(timeout=LOAD_TIMEOUT_MS)
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    expect(page.locator(".st-key-zoom .gtitle").first).to_have_text(re.compile("layer 0, head 1$"),
                                                                    timeout=LOAD_TIMEOUT_MS)
    script_done(page)
    assert "head=1" in page.url


def read_view(page):
    return {"titles": sorted(page.locator(".gtitle").all_text_contents()),
            "boxes": [box.input_value() for box in page.locator("input[type=text], textarea").all()],
            "radios": page.locator('[role="radiogroup"] label:has(input:checked)').all_text_contents()}


def view_of(page, settled, deadline_s=60):
    """What a page shows, as text: every chart title, every text box and selectbox, every chosen radio option;
    read once the script has run and `settled(view)` holds for the same reading twice, 1 s apart. The browser
    draws a page's widgets and charts a moment after its script has finished (Streamlit loads their code
    lazily), so a reading taken before `settled` holds may be empty."""
    expect(page.locator(".st-key-model")).to_be_visible(timeout=LOAD_TIMEOUT_MS)  # the sidebar's picker
    script_done(page)
    last = None
    for _ in range(deadline_s):
        view = read_view(page)
        if view == last and settled(view) and len(view["titles"]) >= page.locator(
                '[data-testid="stPlotlyChart"]').count():
            return view
        last = view
        page.wait_for_timeout(1000)
    raise AssertionError(f"the page did not settle in {deadline_s} s: {last}")


SHARED_LINKS = {  # page -> (link to start from, what the view must show)
    "": ("?model=export-test", "export-test"),
    "explorer": ("explorer?model=export-test&text=cabba&attention=cross&layer=0&head=1", "layer 0, head 1"),
    "mechanics": ("mechanics?model=export-test&text=bca&attention=decoder+self&layer=0&head=1", "cabba"),
    "positional": ("positional?model=export-test&d_model=16&positions=20&pe_k=5", "20 positions × 16 dimensions"),
    "pretrained": ("pretrained?sentences=A+dog+runs.%0AStocks+fell.&layer=2&head=3", "Layer 2, head 3"),
}


@pytest.mark.parametrize("url_path", list(SHARED_LINKS))
def test_a_shared_link_gives_back_the_same_view_in_a_fresh_browser(open_page, browser, app_url, small_model,
                                                                    url_path):
    start, expected = SHARED_LINKS[url_path]
    page = open_page(start)
    if url_path == "mechanics":  # change the view by hand before sharing it: a new input, typed
        box = page.locator(".st-key-input_box input")
        box.fill("cabba", timeout=LOAD_TIMEOUT_MS)
        box.press("Enter")
        expect(box).to_have_value("cabba", timeout=LOAD_TIMEOUT_MS)
    shown = view_of(page, lambda view: any(expected in text for texts in view.values() for text in texts))
    context = browser.new_context(viewport={"width": 1400, "height": 1000})  # no cookies, no session
    try:
        fresh = context.new_page()
        fresh.goto(page.url)
        expect(fresh.locator("h1").first).to_be_visible(timeout=LOAD_TIMEOUT_MS)
        assert view_of(fresh, lambda view: view == shown) == shown
    finally:
        context.close()


def test_clicking_a_token_of_the_head_view_focuses_it(open_page, small_model):
    page = open_page("explorer?model=export-test&text=abcab&attention=encoder+self&layer=0&head=0")
    page.get_by_role("tab", name="Head view").click(timeout=LOAD_TIMEOUT_MS)
    lines = page.locator(".st-key-head_view .scatterlayer .trace.scatter")
    expect(lines.nth(2)).to_be_attached(timeout=LOAD_TIMEOUT_MS)  # the chart has drawn its lines
    all_lines = lines.count()
    token = page.locator(".st-key-head_view .scatterlayer .trace").first.locator("path.point").nth(2)
    box = token.bounding_box(timeout=LOAD_TIMEOUT_MS)
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    expect(page.locator(".st-key-head_view_focus input")).to_have_value("2 c", timeout=LOAD_TIMEOUT_MS)
    script_done(page)
    assert 2 < lines.count() < all_lines  # the two token columns and the focused token's lines
