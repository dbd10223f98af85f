"""The attention-mechanics page through AppTest: every step as a heatmap of the right shape, the hand-computed
weights equal to a recomputation from the model's own modules, and the check shown."""
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from page_helpers import charts, english_left, shown, z_of
from page_helpers import open_page as open_any_page

from attnviz.app import markdown
from attnviz.interpret import mechanics
from attnviz.interpret.input_run import run_input
from attnviz.interpret.mechanics import head_mechanics
from attnviz.training import checkpoint, checkpoint_folder

PAGE = "pages/mechanics.py"


def open_page(**query_params):
    return open_any_page(PAGE, **query_params)


def reference_weights(name, text, module, head):
    """softmax(QK^T / sqrt(d_k) + mask) of one head, from the module's own projections (torch.nn.functional)."""
    picked = checkpoint.load_checkpoint(checkpoint_folder.USER_DIR / name)
    run = run_input(picked.model, picked.task(), text, max_tokens=12)
    attention = dict(picked.model.named_modules())[module]
    inputs = {}
    handle = attention.register_forward_pre_hook(lambda m, args, kwargs: inputs.update(q=args[0], k=args[1]),
                                                 with_kwargs=True)
    with torch.no_grad():
        run.forward(picked.model)
    handle.remove()
    d_k = attention.d_head
    rows = slice(head * d_k, (head + 1) * d_k)
    q = F.linear(inputs["q"][0], attention.q_proj.weight[rows], attention.q_proj.bias[rows])  # (Tq, d_k)
    k = F.linear(inputs["k"][0], attention.k_proj.weight[rows], attention.k_proj.bias[rows])  # (Tk, d_k)
    scores = q @ k.T / math.sqrt(d_k)
    blocked = run.blocked("decoder self" if "self_attn" in module and module.startswith("decoder") else "cross")
    if blocked is not None:
        scores = scores.masked_fill(blocked, float("-inf"))
    return run, attention, scores.softmax(-1).detach().numpy()


def test_every_step_is_shown_with_its_shape(page_models):
    at = open_page(model="test-reverse", text="abcde", attention="encoder self", layer="1", head="1")
    assert not at.exception
    figures = charts(at)
    run, attention, expected = reference_weights("test-reverse", "abcde", "encoder.layers.1.self_attn", 1)
    S, D, d_k = 6, 32, 16  # 5 letters + EOS; d_model 32 over 2 heads
    shapes = {"X": (S, D), "W_Q": (D, d_k), "W_K": (D, d_k), "W_V": (D, d_k), "Q": (S, d_k), "K": (S, d_k),
              "V": (S, d_k), "QK^T": (S, S), "scaled": (S, S), "masked": (S, S), "weights": (S, S), "Z": (S, d_k),
              "concat": (S, D), "W_O": (D, D), "output": (S, D)}
    assert {key.removeprefix("step_") for key in figures if key.startswith("step_")} == set(shapes)  # no X_kv
    for step, shape in shapes.items():
        assert z_of(figures[f"step_{step}"]).shape == shape, step
    assert np.allclose(z_of(figures["step_weights"]), expected, atol=1e-5)
    assert np.allclose(z_of(figures["step_W_Q"]), attention.q_proj.weight[16:32].T.detach().numpy())
    assert len(at.get("latex")) >= len(shapes)  # one formula beside every step
    assert any("max |difference|" in s.value for s in at.success)


def test_cross_attention_has_its_own_keys_input(page_models):
    at = open_page(model="test-reverse", text="abcdefg", attention="cross", head="0")
    assert not at.exception
    figures = charts(at)
    run, _, expected = reference_weights("test-reverse", "abcdefg", "decoder.layers.0.cross_attn", 0)
    T = run.tgt_in.shape[1]
    assert z_of(figures["step_X_kv"]).shape == (8, 32)  # the encoder's output
    assert z_of(figures["step_weights"]).shape == (T, 8)
    assert np.allclose(z_of(figures["step_weights"]), expected, atol=1e-5)


def test_causal_mask_shows_as_masked(page_models):
    at = open_page(model="test-reverse", text="abcd", attention="decoder self")
    assert not at.exception
    masked = z_of(charts(at)["step_masked"])
    T = masked.shape[0]
    assert np.isnan(masked[np.triu_indices(T, 1)]).all() and np.isfinite(masked[np.tril_indices(T)]).all()


def test_shared_link_restores_layer_and_head(page_models):
    at = open_page(model="test-reverse", text="fedcba", attention="encoder self", layer="1", head="0")
    assert (at.selectbox(key="layer").value, at.selectbox(key="head").value) == (1, 0)
    assert at.text_input(key="input_box").value == "fedcba"
    assert "encoder.layers.1.self_attn" in at.success[0].value


def test_long_input_is_cut_to_twelve_tokens(page_models):
    at = open_page(model="test-reverse", text="abcdefgh" * 2, attention="encoder self")
    assert not at.exception
    assert any("only its first 12" in shown(w) for w in at.warning)
    assert z_of(charts(at)["step_weights"]).shape == (13, 13)  # 12 letters + EOS


@pytest.mark.parametrize("text, message", [("", "empty"), ("ab?", "does not know")])
def test_bad_input_gets_a_message(page_models, text, message):
    at = open_page(model="test-reverse", text=text)
    assert not at.exception
    assert any(message in shown(w) for w in at.warning)


def test_language_model_and_rnn(page_models):
    at = open_page(model="test-lm", text="the cat")
    assert not at.exception
    assert at.radio(key="attention").options == ["Decoder self-attention (causal)"]
    prompt = len(checkpoint.load_checkpoint(checkpoint_folder.USER_DIR / "test-lm").tokenizer.encode("the cat"))
    assert z_of(charts(at)["step_weights"]).shape == (1 + prompt + 2, 1 + prompt + 2)  # BOS, prompt, 3 new - 1
    at = open_page(model="test-rnn", text="abc")
    assert not at.exception
    assert any("recurrent" in i.value for i in at.info)


def break_the_check(monkeypatch):
    """The page's head mechanics, with a recomputation that misses the model's weights by 0.25."""
    real = head_mechanics

    def off_by_a_bit(*args, **kwargs):
        result = real(*args, **kwargs)
        result.weights_error = 0.25
        return result

    monkeypatch.setattr(mechanics, "head_mechanics", off_by_a_bit)


def test_a_mismatch_would_be_shown_as_an_error(page_models, monkeypatch):
    break_the_check(monkeypatch)
    at = open_page(model="test-reverse", text="bad", attention="encoder self")  # an input no other test uses
    assert not at.exception and not at.success
    assert "do not match" in at.error[0].value and "2.5e-01" in at.error[0].value


def test_kind_layer_and_head_carry_from_the_explorer_into_the_url(page_models):
    at = open_any_page("pages/explorer.py", model="test-reverse", text="abcd")
    at.radio(key="attention").set_value("cross").run()
    at.selectbox(key="head").set_value(1).run()
    at.query_params.clear()  # a menu link carries the model only (and the page it opens must not need more)
    at.switch_page(PAGE).run()
    assert not at.exception
    assert at.radio(key="attention").value == "cross" and at.selectbox(key="head").value == 1
    assert at.query_params["attention"] in ("cross", ["cross"]) and at.query_params["head"] in ("1", ["1"])
    at.switch_page("pages/decoding.py").run()
    assert not at.exception
    assert at.selectbox(key="head").value == 1 and at.query_params["head"] in ("1", ["1"])
    at.switch_page("pages/positional.py").run()  # a page without these pickers keeps them for the next one
    at.switch_page(PAGE).run()
    assert at.radio(key="attention").value == "cross" and at.selectbox(key="head").value == 1


# Texts of other files the page shows, still English until those files are translated (the lead's whole-app test
# covers them): the input box's help, the titles of the scaling figures and the scaling table's columns.
OTHER_FILES_ENGLISH = ("Shared by every page and kept in the link. Press Enter to apply.",  # app/ui/attention.py
                       "Variance of q·k", "closed form d_k", "Largest softmax gradient",  # app/lesson_figures.py
                       "scaled max gradient")  # interpret/scaling.py


def english_on_main(at, run):
    """The English phrases left in the page's main area (the sidebar is the ui package's), besides the tokens and
    the output of `run` and OTHER_FILES_ENGLISH."""
    tokens = [markdown.code(label) for label in [*(run.src_labels or []), *run.tgt_labels, run.output]]
    return english_left(SimpleNamespace(main=at.main, sidebar=()), allowed=[*tokens, *OTHER_FILES_ENGLISH])


@pytest.mark.parametrize("attention", ["encoder self", "decoder self", "cross"])
def test_every_kind_of_a_transformer_in_chinese(page_models, chinese, attention):
    at = open_page(model="test-reverse", text="abcd", attention=attention, lang="zh")
    assert not at.exception
    picked = checkpoint.load_checkpoint(checkpoint_folder.USER_DIR / "test-reverse")
    run = run_input(picked.model, picked.task(), "abcd", max_tokens=12)
    assert english_on_main(at, run) == []
    check = at.success[0].value
    assert check.startswith("**核对：** 这里算出的权重与模型的钩子 `") and "捕获的权重一致：最大 |差值| = **" in check
    nothing_blocked = [c for c in at.caption if "这里没有键被屏蔽" in c.value]
    blocked = run.blocked(attention)  # the causal mask, or None: a single input has no padding
    assert len(nothing_blocked) == (blocked is None or not blocked.any())
    assert charts(at)["step_Q"]["layout"]["title"]["text"] == "Q: 查询 × d_k"


def test_a_language_model_and_an_rnn_in_chinese(page_models, chinese):
    at = open_page(model="test-lm", text="the cat", lang="zh")
    assert not at.exception
    picked = checkpoint.load_checkpoint(checkpoint_folder.USER_DIR / "test-lm")
    assert english_on_main(at, run_input(picked.model, picked.task(), "the cat", 12, max_new_tokens=3)) == []
    at = open_page(model="test-rnn", text="abc", lang="zh")
    assert not at.exception
    assert english_left(SimpleNamespace(main=at.main, sidebar=()), allowed=OTHER_FILES_ENGLISH) == []
    assert any(info.value.startswith("test-rnn 是循环模型") for info in at.info)


def test_a_mismatch_is_shown_in_chinese(page_models, chinese, monkeypatch):
    break_the_check(monkeypatch)
    at = open_page(model="test-reverse", text="dab", attention="encoder self", lang="zh")  # an input no other test uses
    assert not at.exception and not at.success
    assert "捕获的权重不一致：" in at.error[0].value and "**2.5e-01**" in at.error[0].value
