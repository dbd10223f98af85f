"""The step-by-step decoding page in a real browser: its chart draws, and a forced token goes through a callback."""
import shutil

import pytest
from playwright.sync_api import expect

from attnviz import build_model
from attnviz.data.tasks import make_task
from attnviz.models.architectures import model_config
from attnviz.training import checkpoint


@pytest.fixture
def untrained_model():
    """A tiny untrained Transformer that records its task (the page needs the tokenizer and task): any output will do."""
    task = make_task("reverse", min_len=3, max_len=5, alphabet="abc", n_train=20, n_val=5, n_test=5)
    model = build_model(model_config("transformer", task.tokenizer, d_model=8, n_heads=2, d_ff=16))
    path = checkpoint.save_checkpoint(checkpoint.USER_DIR / "decoding-smoke", model, task.tokenizer,
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
