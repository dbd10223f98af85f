"""The step-by-step decoding page in a real browser: its chart draws, and a forced token goes through a callback."""
import re
import shutil

import pytest
from playwright.sync_api import expect

from attnviz import build_model
from attnviz.data.tasks import make_task
from attnviz.models.architectures import model_config
from attnviz.training import checkpoint, checkpoint_folder


@pytest.fixture
def untrained_model():
    """A tiny untrained Transformer that records its task (the page needs the tokenizer and task): any output will do."""
    task = make_task("reverse", min_len=3, max_len=5, alphabet="abc", n_train=20, n_val=5, n_test=5)
    model = build_model(model_config("transformer", task.tokenizer, d_model=8, n_heads=2, d_ff=16))
    path = checkpoint.save_checkpoint(checkpoint_folder.USER_DIR / "decoding-smoke", model, task.tokenizer,
                                      {"task": task.spec()})
    yield path.name
    shutil.rmtree(path, ignore_errors=True)


def test_force_a_token_and_reset(open_page, untrained_model):
    page = open_page(f"decoding?model={untrained_model}&text=abc")
    expect(page.locator(".st-key-dec_bars .js-plotly-plot")).to_be_visible(timeout=30_000)
    page.locator(".st-key-dec_force button").click()
    expect(page.get_by_text("step 1 forced to")).to_be_visible(timeout=30_000)
    expect(page.get_by_text("was forced to")).to_be_visible()
    page.locator(".st-key-dec_reset button").click()
    expect(page.get_by_text("step 1 forced to")).to_have_count(0, timeout=30_000)
    expect(page.locator(".stException")).to_have_count(0)


STATUS = re.compile(r"^\d+ steps? taken")  # the caption saying how many steps were taken


def finished(page):
    """Wait until the page's script run has finished (after a click, a reload or a first load)."""
    expect(page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]')).to_be_attached(timeout=60_000)
    return page


def take_steps(page, n, then_taken):
    for taken in range(then_taken - n + 1, then_taken + 1):
        page.locator(".st-key-dec_next button").click(timeout=60_000)
        expect(page.get_by_text(f"{taken} steps taken")).to_be_visible(timeout=60_000)
        finished(page)


def decoding_view(page):
    """The parts of the page that show its decoding: the status line, the output, the settings of each stretch
    (sampling) and the hypotheses table (beam search)."""
    return [page.locator('[data-testid="stCaptionContainer"]', has_text=STATUS),
            page.locator('[data-testid="stMarkdownContainer"]', has_text="Output so far"),
            page.locator('[data-testid="stCaptionContainer"]', has_text="Sampled with"),
            page.locator('[data-testid="stTable"]')]


def shows_the_same(page, texts):
    """Each part of `decoding_view` comes to read the same as `texts` (elements draw after the run ends)."""
    for part, text in zip(decoding_view(finished(page)), texts):
        expect(part).to_have_text(text, timeout=60_000)


def reopened_the_same(browser, page):
    """The view after a reload, and in a fresh browser context opening the page's link."""
    url, texts = page.url, [part.all_text_contents() for part in decoding_view(page)]
    assert texts[0] and texts[1]
    page.reload()
    expect(page.get_by_text("Output so far")).to_be_visible(timeout=60_000)
    shows_the_same(page, texts)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        shared = context.new_page()
        shared.goto(url)
        expect(shared.get_by_text("Output so far")).to_be_visible(timeout=60_000)
        shows_the_same(shared, texts)
    finally:
        context.close()


def test_five_beam_steps_survive_a_reload_and_a_shared_link(open_page, browser):
    page = finished(open_page("decoding?model=reverse-transformer&text=abcdefgh&method=beam"))
    take_steps(page, 4, then_taken=5)
    expect(page.locator('[data-testid="stTable"]')).to_contain_text("abcdefgh"[::-1][:5])  # the hypotheses, whole
    reopened_the_same(browser, page)


def test_sampling_settings_changed_mid_way_survive_a_reload_and_a_shared_link(open_page, browser):
    page = finished(open_page("decoding?model=reverse-transformer&text=abcdef&method=sample&temperature=2.0"))
    take_steps(page, 2, then_taken=3)
    output = page.locator('[data-testid="stMarkdownContainer"]', has_text="Output so far").inner_text()
    page.locator(".st-key-dec_temperature input[type=range]").press("ArrowLeft", timeout=60_000)  # 0.05 down
    expect(page.get_by_text("apply from step 4 on")).to_be_visible(timeout=60_000)
    finished(page)
    assert page.locator('[data-testid="stMarkdownContainer"]', has_text="Output so far").inner_text() == output
    take_steps(page, 1, then_taken=4)
    expect(page.get_by_text("steps 1–3: temperature 2, no top-k, no top-p, seed 0; step 4: temperature 1.95")
           ).to_be_visible()
    reopened_the_same(browser, page)
