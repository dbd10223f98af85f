"""The "Pretrained (MiniLM)" page through AppTest: grid, zoom, statistics, rollout, similarity under ablation,
limits on the input, the install hint when the model's package is missing, and the page in Chinese."""
import base64
import json
import re

import numpy as np
import pytest
import streamlit as st
import torch
from page_helpers import english_left, english_phrases, shown
from page_helpers import open_page as open_any_page
from streamlit.testing.v1 import AppTest

from attnviz import checks
from attnviz.app.markdown import escape
from attnviz.app.text import ROLLOUT_CAPTION, rollout_title
from attnviz.i18n import translations
from attnviz.interpret.bert_heads import HEAD_STATS
from attnviz.models import pretrained

APP = "../../app.py"
PAGE = "pages/pretrained.py"

needs_minilm = pytest.mark.skipif(not pretrained.minilm_available(), reason=f"MiniLM not installed: {pretrained.INSTALL_HINT}")


@pytest.fixture(scope="module")
def minilm():
    return pretrained.load_minilm()


def open_page(text=None, **query_params):
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update(query_params)
    at.switch_page(PAGE).run()
    if text is not None:
        at.text_area(key="minilm_text").set_value(text).run()
    assert not at.exception
    return at


def chart(at, key):
    """The figure JSON of the plotly chart with widget key `key`."""
    found = [c for c in at.get("plotly_chart") if c.proto.id.endswith(f"-{key}")]
    assert len(found) == 1, f"no chart {key!r}"
    return json.loads(found[0].proto.spec)


def z_of(trace):
    """A heatmap trace's z as an array (plotly sends numeric arrays base64-encoded)."""
    z = trace["z"]
    if isinstance(z, dict):
        shape = [int(n) for n in str(z.get("shape", "-1")).split(",")]
        return np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"]).reshape(shape)
    return np.array(z, dtype=float)


def sentences_of(at):
    return [line for line in at.text_area(key="minilm_text").value.splitlines() if line.strip()]


@needs_minilm
def test_grid_shows_all_6_x_12_heads_of_the_chosen_sentence(minilm):
    at = open_page()
    assert at.title[0].value == "Pretrained (MiniLM)"
    sentences = sentences_of(at)
    reference = minilm.run(sentences)
    for index in (0, 2):
        at.selectbox(key="minilm_sentence").set_value(index).run()
        grid = chart(at, "minilm_grid")
        assert [trace["type"] for trace in grid["data"]] == ["heatmap"] * 72 + ["scatter"] * 72  # + click targets
        expected = reference.patterns(index).numpy()  # (6, 12, n, n)
        for trace_number in (0, 5 * 12 + 11):  # layer 0 head 0, layer 5 head 11
            layer, head = divmod(trace_number, 12)
            assert grid["data"][trace_number]["name"] == f"layer {layer} head {head}"
            np.testing.assert_allclose(z_of(grid["data"][trace_number]), expected[layer, head], atol=1e-6)


@needs_minilm
def test_zoom_shows_one_head_with_its_tokens(minilm):
    at = open_page("The cat sat on the mat.\nHello, world!")
    at.selectbox(key="minilm_sentence").set_value(1).run()
    at.selectbox(key="layer").set_value(3).run()
    at.selectbox(key="head").set_value(7).run()
    zoom = chart(at, "minilm_zoom")
    assert zoom["layout"]["xaxis"]["ticktext"] == ["[CLS]", "hello", ",", "world", "!", "[SEP]"]
    expected = minilm.run(["The cat sat on the mat.", "Hello, world!"]).patterns(1)[3, 7].numpy()
    np.testing.assert_allclose(z_of(zoom["data"][0]), expected, atol=1e-6)
    assert (at.query_params["layer"], at.query_params["head"]) == ("3", "7")  # a link to share


@needs_minilm
def test_a_shared_link_restores_layer_and_head(minilm):
    at = open_page(layer="5", head="11")
    assert (at.selectbox(key="layer").value, at.selectbox(key="head").value) == (5, 11)
    expected = minilm.run(sentences_of(at)).patterns(0)[5, 11].numpy()
    np.testing.assert_allclose(z_of(chart(at, "minilm_zoom")["data"][0]), expected, atol=1e-6)


@needs_minilm
def test_statistics_table_and_heatmap(minilm):
    at = open_page()
    table = at.dataframe[0].value
    assert len(table) == 72 and list(table[["layer", "head"]].iloc[-1]) == [5, 11]
    for column in ("cls", "sep", "punctuation", "previous_token", "next_token", "entropy"):
        assert column in table.columns
    # [CLS] is every sentence's position 0: the column is the mean weight on key 0 over all real queries.
    run = minilm.run(sentences_of(at))
    real = run.batch.attention_mask.bool()  # (B, T)
    for layer, head in ((0, 2), (4, 5)):
        on_cls = run.attentions[f"encoder.layers.{layer}.self_attn.hook_pattern"][:, head, :, 0]  # (B, T)
        row = table[(table["layer"] == layer) & (table["head"] == head)].iloc[0]
        assert row["cls"] == pytest.approx(on_cls[real].mean().item(), abs=1e-5)

    at.selectbox(key="minilm_stat").set_value("previous_token").run()
    heatmap = chart(at, "minilm_stat_map")
    assert heatmap["layout"]["title"]["text"] == "previous_token per head"
    by_head = table.pivot(index="layer", columns="head", values="previous_token").to_numpy()  # (6, 12)
    np.testing.assert_allclose(z_of(heatmap["data"][0]), by_head, atol=1e-6)


@needs_minilm
def test_rollout_beside_raw_attention(minilm):
    at = open_page("Attention is all you need.")
    at.slider(key="minilm_rollout_layer").set_value(2).run()
    patterns = minilm.run(["Attention is all you need."]).patterns(0)  # (6, 12, n, n)
    np.testing.assert_allclose(z_of(chart(at, "minilm_raw")["data"][0]), patterns[2].mean(0).numpy(), atol=1e-6)
    # Reference rollout by hand: A_hat = (mean over heads + I) / 2, rows sum to 1; multiply layers 0..2.
    n = patterns.shape[-1]
    rollout = torch.eye(n)
    for layer in range(3):
        rollout = (0.5 * patterns[layer].mean(0) + 0.5 * torch.eye(n)) @ rollout
    rolled = z_of(chart(at, "minilm_rollout")["data"][0])
    np.testing.assert_allclose(rolled, rollout.numpy(), atol=1e-5)
    np.testing.assert_allclose(rolled.sum(1), 1.0, atol=1e-5)


@needs_minilm
def test_ablating_heads_changes_the_similarity_matrix(minilm):
    at = open_page()
    sentences = sentences_of(at)
    before = z_of(chart(at, "minilm_sim_before")["data"][0])
    embeddings = minilm.sentence_embeddings(sentences)  # (B, D), normalised
    np.testing.assert_allclose(before, (embeddings @ embeddings.T).numpy(), atol=1e-5)
    np.testing.assert_allclose(z_of(chart(at, "minilm_sim_change")["data"][0]), 0.0, atol=1e-6)

    at.multiselect(key="minilm_ablate").set_value([(0, 1), (3, 4)]).run()
    assert not at.exception
    after = z_of(chart(at, "minilm_sim_after")["data"][0])
    off = {("encoder.layers.0.self_attn", 1), ("encoder.layers.3.self_attn", 4)}
    np.testing.assert_allclose(after, minilm.similarity(sentences, off).numpy(), atol=1e-5)
    assert np.abs(after - before).max() > 1e-3
    np.testing.assert_allclose(z_of(chart(at, "minilm_sim_change")["data"][0]), after - before, atol=1e-5)
    assert chart(at, "minilm_sim_after")["layout"]["title"]["text"] == "2 heads off"


@needs_minilm
def test_ranking_every_head(minilm):
    at = open_page("A dog runs.\nA puppy is running.")
    at.toggle(key="minilm_rank").set_value(True).run()
    assert not at.exception
    effects = at.dataframe[-1].value
    assert len(effects) == 72 and list(effects.columns) == ["layer", "head", "mean_change", "max_change"]
    assert effects["mean_change"].is_monotonic_decreasing

    at.button(key="minilm_top5").click().run()
    top = [(int(layer), int(head)) for layer, head in effects[["layer", "head"]].head(5).itertuples(index=False)]
    assert at.multiselect(key="minilm_ablate").value == top
    assert chart(at, "minilm_sim_after")["layout"]["title"]["text"] == "5 heads off"


@needs_minilm
def test_input_limits_are_explained(minilm):
    many = "\n".join(f"Sentence number {i}." for i in range(pretrained.MAX_SENTENCES + 2))
    at = open_page("word " * 60 + "\n" + many)
    assert any(shown(w).startswith(f"Sentence 1 is 62 tokens long; only its first {pretrained.MAX_TOKENS} are used")
               for w in at.warning)  # cut with a warning worded as the explorer words it
    assert any(f"first {pretrained.MAX_SENTENCES}" in shown(w) for w in at.warning)
    options = at.selectbox(key="minilm_sentence").options
    assert len(options) == pretrained.MAX_SENTENCES
    assert minilm.token_counts([options[0]]) == [pretrained.MAX_TOKENS]

    at.text_area(key="minilm_text").set_value("  \n").run()
    assert not at.exception
    assert [shown(w) for w in at.warning] == [checks.EMPTY_INPUT]
    assert not at.get("plotly_chart")


@needs_minilm
def test_spaces_and_long_sentences_get_the_answers_the_explorer_gives(page_models):
    explorer = open_any_page("pages/explorer.py", model="test-reverse", text="   ")
    at = open_page("   ")
    assert [shown(w) for w in at.warning] == [shown(w) for w in explorer.warning] == [checks.EMPTY_INPUT]
    explorer = open_any_page("pages/explorer.py", model="test-reverse", text="abcdefgh" * 10)
    at = open_page("word " * 60)
    cut = re.compile(r"is \d+ tokens long; only its first (\d+) are used \(“")
    assert any(cut.search(shown(w)) for w in explorer.warning)
    assert any(cut.search(shown(w)) and cut.search(shown(w))[1] == str(pretrained.MAX_TOKENS) for w in at.warning)


@needs_minilm
def test_the_sentences_are_kept_in_the_link(minilm):
    at = open_page(sentences="A dog runs.\nStocks fell.")
    assert sentences_of(at) == ["A dog runs.", "Stocks fell."]
    assert at.selectbox(key="minilm_sentence").options == ["A dog runs.", "Stocks fell."]
    at.text_area(key="minilm_text").set_value("One.\nTwo.\nThree.").run()
    assert at.query_params["sentences"] in ("One.\nTwo.\nThree.", ["One.\nTwo.\nThree."])
    at.switch_page("pages/positional.py").run()
    at.switch_page(PAGE).run()
    assert sentences_of(at) == ["One.", "Two.", "Three."]


def test_without_the_package_the_page_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(pretrained, "minilm_available", lambda: False)
    at = open_page()
    assert any("not installed" in w.value for w in at.warning)
    assert at.code[0].value == pretrained.INSTALL_HINT
    assert not at.get("plotly_chart") and not at.text_area


def test_a_broken_install_is_an_error_message_not_a_crash(monkeypatch, tmp_path):
    monkeypatch.setattr(pretrained, "minilm_available", lambda: True)
    monkeypatch.setattr(pretrained, "model_path", lambda: tmp_path)  # an empty folder: no model files
    st.cache_resource.clear()  # else the model another test loaded is served from the cache
    at = open_page()
    assert "MiniLM could not be loaded" in shown(at.error[0]) and "model.safetensors" in shown(at.error[0])
    assert pretrained.INSTALL_HINT in at.code[0].value
    assert not at.get("plotly_chart")


@needs_minilm
def test_zoom_of_layer_0_equals_torch_attention_on_the_checkpoint_file(minilm):
    """Independent of our loader and attention: BERT's own tensors read from model.safetensors, the embedding
    written out (word + position + token type, LayerNorm eps 1e-12), then nn.MultiheadAttention with those weights."""
    from safetensors.torch import load_file
    at = open_page("Hello, world!")
    at.selectbox(key="layer").set_value(0).run()
    at.selectbox(key="head").set_value(5).run()
    bert = load_file(pretrained.model_path() / "model.safetensors")
    ids = torch.tensor(minilm.tokenizer.encode("Hello, world!").ids)  # (T,) with [CLS] and [SEP]
    D = bert["embeddings.word_embeddings.weight"].shape[1]
    x = (bert["embeddings.word_embeddings.weight"][ids] + bert["embeddings.position_embeddings.weight"][:len(ids)]
         + bert["embeddings.token_type_embeddings.weight"][0])  # (T, D)
    x = torch.nn.functional.layer_norm(x, (D,), bert["embeddings.LayerNorm.weight"], bert["embeddings.LayerNorm.bias"],
                                       eps=1e-12)[None]  # (1, T, D)
    attention = torch.nn.MultiheadAttention(D, 12, batch_first=True)
    part = lambda name, kind: bert[f"encoder.layer.0.attention.self.{name}.{kind}"]
    with torch.no_grad():
        attention.in_proj_weight.copy_(torch.cat([part(n, "weight") for n in ("query", "key", "value")]))
        attention.in_proj_bias.copy_(torch.cat([part(n, "bias") for n in ("query", "key", "value")]))
        _, weights = attention(x, x, x, need_weights=True, average_attn_weights=False)  # (1, 12, T, T)
    zoom = z_of(chart(at, "minilm_zoom")["data"][0])
    assert zoom.shape == (len(ids), len(ids))
    np.testing.assert_allclose(zoom, weights[0, 5].numpy(), atol=1e-5)


def others_english(at):
    """The English a Chinese run of the page may still show that is not the page's own: the sentences (MiniLM reads
    English; as typed and as escaped Markdown), a paper's title, and the texts other modules write (the statistics'
    meanings of attnviz.interpret.bert_heads, the rollout caption and title of attnviz.app.text, the words
    figures.py puts on every head grid and statistic map), translated there."""
    stat, upto = at.selectbox(key="minilm_stat").value, at.slider(key="minilm_rollout_layer").value
    sentences = sentences_of(at)
    return (*sentences, *map(escape, sentences), "What does BERT look at?", *HEAD_STATS.values(), ROLLOUT_CAPTION,
            rollout_title(upto), "click to zoom", f"{stat} per head")


@needs_minilm
def test_the_page_reads_in_chinese(minilm):
    at = open_page(lang="zh")
    at.multiselect(key="minilm_ablate").set_value([(0, 1), (3, 4)]).run()
    at.toggle(key="minilm_rank").set_value(True).run()
    assert not at.exception
    assert at.title[0].value == "预训练模型（MiniLM）"
    assert [tab.label for tab in at.tabs] == ["注意力头", "注意力头统计", "注意力展开", "相似度与消融"]
    assert chart(at, "minilm_sim_after")["layout"]["title"]["text"] == "关闭了 2 个头"
    assert at.multiselect(key="minilm_ablate").format_func((3, 4)) == \
        translations("zh").gettext("layer {layer} head {head}").format(layer=3, head=4)
    assert english_left(at, allowed=others_english(at)) == []
    assert english_left(at, where=("sidebar",)) == []

    at.button(key="minilm_top5").click().run()
    top = at.multiselect(key="minilm_ablate").value
    assert len(top) == 5 and chart(at, "minilm_sim_after")["layout"]["title"]["text"] == "关闭了 5 个头"
    at.run()  # the heads' Chinese names were made in the page's run: the choice outlives it
    assert at.multiselect(key="minilm_ablate").value == top


@needs_minilm
def test_a_link_to_a_layer_minilm_lacks_says_so_in_chinese(minilm):
    at = open_page(lang="zh", layer="9", head="99")
    notes = [shown(w) for w in at.warning]
    assert "链接要求 layer 为 9，但这里没有这个选项：改用 0。" in notes
    assert "链接要求 head 为 99，但这里没有这个选项：改用 0。" in notes
    assert all(english_phrases(note) == [] for note in notes)
    assert (at.selectbox(key="layer").value, at.selectbox(key="head").value) == (0, 0)


def test_without_the_package_the_page_says_how_to_install_it_in_chinese(monkeypatch):
    monkeypatch.setattr(pretrained, "minilm_available", lambda: False)
    at = open_page(lang="zh")
    assert any("pip" in w.value and "尚未安装" in w.value for w in at.warning)
    assert at.code[0].value == pretrained.INSTALL_HINT
    assert english_left(at) == []
