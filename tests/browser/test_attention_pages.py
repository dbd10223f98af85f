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
from attnviz.training import checkpoint

LOAD_TIMEOUT_MS = 90_000



@pytest.fixture
def small_model():
    """An untrained 1+1-layer Transformer for a small reverse task, saved as "export-test"."""
    task = make_task("reverse", alphabet="abc", min_len=3, max_len=6, n_train=50, n_val=10, n_test=10)
    vocab = task.tokenizer.vocab_size
    model = build_model(TransformerConfig(vocab, vocab, d_model=8, n_heads=2, d_ff=16, max_len=32))
    path = checkpoint.save_checkpoint(checkpoint.USER_DIR / "export-test", model, task.tokenizer, {"task": task.spec()})
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
    picked = checkpoint.load_checkpoint(checkpoint.USER_DIR / "export-test")
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
