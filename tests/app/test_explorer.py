"""The attention explorer page through AppTest: charts carry the captured patterns, with their shapes."""
import html
import json
import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from page_helpers import charts, english_left, shown, z_of
from page_helpers import open_page as open_any_page

from attnviz.app import markdown
from attnviz.app.text import ROLLOUT_CAPTION, rollout_title
from attnviz.interpret.ablation import ablation_summary
from attnviz.interpret.head_stats import STATS, head_stats
from attnviz.interpret.head_types import HEAD_TYPES, head_type_table
from attnviz.interpret.input_run import ablate_input, run_input
from attnviz.training import checkpoint, checkpoint_folder

PAGE = "pages/explorer.py"


def open_page(**query_params):
    return open_any_page(PAGE, **query_params)


def heatmaps(figure):
    return [trace for trace in figure["data"] if trace["type"] == "heatmap"]


def reference(name, text):
    """The model's own patterns for the same input, recomputed here from the checkpoint."""
    picked = checkpoint.load_checkpoint(checkpoint_folder.USER_DIR / name)
    return picked, run_input(picked.model, picked.task(), text)


def test_reverse_model_shows_every_kind_and_head(page_models):
    at = open_page(model="test-reverse", text="abcdef")
    assert not at.exception
    assert at.radio(key="attention").options == ["Encoder self-attention", "Decoder self-attention (causal)",
                                                 "Cross-attention (decoder → encoder)"]
    picked, run = reference("test-reverse", "abcdef")
    assert any(run.output in m.value for m in at.markdown)  # the greedy output is shown
    figures = charts(at)
    grid, zoom = figures["grid"], figures["zoom"]
    assert len(heatmaps(grid)) == 2 * 2  # 2 encoder layers x 2 heads
    assert z_of(zoom).shape == (7, 7)  # 6 letters + EOS
    expected = run.cache["encoder.layers.0.self_attn.hook_pattern"][0, 0].numpy()
    assert np.allclose(z_of(zoom), expected, atol=1e-6)
    assert zoom["layout"]["xaxis"]["ticktext"] == ["a", "b", "c", "d", "e", "f", "<eos>"]
    entropy = head_stats(run.cache["encoder.layers.0.self_attn.hook_pattern"])["entropy"][0]
    assert any(c.value.startswith(f"This head: entropy {entropy:.2f} nats") for c in at.caption)
    assert not at.warning and not at.error


def test_cross_attention_is_rectangular_and_decoder_self_is_masked(page_models):
    at = open_page(model="test-reverse", text="abcdefgh", attention="cross")
    assert not at.exception
    _, run = reference("test-reverse", "abcdefgh")
    T = run.tgt_in.shape[1]
    figures = charts(at)
    assert len(heatmaps(figures["grid"])) == 1 * 2  # 1 decoder layer x 2 heads
    assert z_of(figures["zoom"]).shape == (T, 9)  # decoder positions x (8 letters + EOS)

    at.radio(key="attention").set_value("decoder self").run()
    zoom = z_of(charts(at)["zoom"])
    assert zoom.shape == (T, T)
    assert np.isnan(zoom[np.triu_indices(T, 1)]).all()  # the future is shown masked
    assert np.isfinite(zoom[np.tril_indices(T)]).all()


def test_statistics_table_and_heatmap(page_models):
    at = open_page(model="test-reverse", text="abcdef")
    table = at.dataframe[0].value  # the only table: head statistics
    assert len(table) == 2 * 2 + 2 + 2  # encoder self (2 x 2), decoder self (1 x 2), cross (1 x 2)
    assert {"entropy", "previous_token", "sink"} <= set(table.columns)
    at.selectbox(key="stat").set_value("max_weight").run()
    stat_map = charts(at)["stat_map"]
    encoder = table[table["kind"] == "encoder self"]
    assert np.allclose(z_of(stat_map),
                       encoder.pivot(index="layer", columns="head", values="max_weight").to_numpy())


def test_rollout_beside_raw_attention(page_models):
    at = open_page(model="test-reverse", text="abcdef")
    figures = charts(at)
    rollout = z_of(figures["rollout"])
    assert rollout.shape == (7, 7) and np.allclose(rollout.sum(1), 1, atol=1e-5)
    assert z_of(figures["raw"]).shape == (7, 7)
    assert any(ROLLOUT_CAPTION == c.value for c in at.caption)


def test_switching_heads_off_changes_what_the_page_shows(page_models):
    at = open_page(model="test-reverse", text="abcdefg", attention="cross")
    assert "ablate_probs" not in charts(at)
    at.multiselect(key="ablate").set_value([("cross", 0, 0), ("cross", 0, 1)]).run()
    assert not at.exception
    picked, run = reference("test-reverse", "abcdefg")
    heads = {("decoder.layers.0.cross_attn", 0), ("decoder.layers.0.cross_attn", 1)}
    with torch.no_grad():
        expected = ablation_summary(picked.model, picked.task().batches("test", 256), heads)
    figures = charts(at)
    assert [trace["name"] for trace in figures["ablate_probs"]["data"]] == ["all heads on", "heads off"]
    assert "off" in json.dumps(figures["grid"]["layout"]["annotations"])  # the grid marks the heads
    loss = next(m for m in at.metric if m.label == "Test-set loss")
    assert loss.value == f"{expected['loss_after']:.3f}" and loss.delta == f"{expected['loss_change']:+.3f}"
    assert expected["loss_change"] > 0  # the reverse model needs cross-attention


def test_shared_link_restores_the_view(page_models):
    at = open_page(model="test-reverse", text="hgfe", attention="encoder self", layer="1", head="1")
    assert at.text_input(key="input_box").value == "hgfe"
    assert at.selectbox(key="layer").value == 1 and at.selectbox(key="head").value == 1
    _, run = reference("test-reverse", "hgfe")
    zoom = z_of(charts(at)["zoom"])
    assert np.allclose(zoom, run.cache["encoder.layers.1.self_attn.hook_pattern"][0, 1].numpy(), atol=1e-6)
    at.selectbox(key="head").set_value(0).run()
    assert at.query_params["head"] in ("0", ["0"]) and at.query_params["text"] in ("hgfe", ["hgfe"])


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("abcxyz", "does not know"),
    ("abcdefgh" * 10, "only its first"),
    ("ab" * 800, "only its first"),  # a link longer than the box allows
])
def test_bad_input_gets_a_message(page_models, text, message):
    at = open_page(model="test-reverse", text=text)
    assert not at.exception
    assert any(message in shown(w) for w in at.warning)


def test_a_paste_longer_than_the_box_is_cut_with_a_warning(page_models):
    at = open_page(model="test-reverse", text="abc")
    at.text_input(key="input_box").input("hgfedcba" * 250).run()  # 2000 characters: a box with a limit drops it
    assert not at.exception
    assert at.text_input(key="input_box").value == ("hgfedcba" * 250)[:1000]
    assert any("is 1000 tokens long; only its first" in shown(w) for w in at.warning)
    assert at.query_params["text"] in (("hgfedcba" * 125), ["hgfedcba" * 125])


def test_language_model_has_decoder_self_attention_only(page_models):
    at = open_page(model="test-lm", text="the cat")
    assert not at.exception
    assert at.radio(key="attention").options == ["Decoder self-attention (causal)"]
    assert len(heatmaps(charts(at)["grid"])) == 2 * 2


def test_rnn_has_cross_attention_only_and_plain_lstm_none(page_models):
    at = open_page(model="test-rnn", text="abcd")
    assert not at.exception
    assert at.radio(key="attention").options == ["Cross-attention (decoder → encoder)"]
    assert "grid" not in charts(at) and "zoom" in charts(at)  # one head: no lone thumbnail above its zoom
    at = open_page(model="test-lstm", text="abcd")
    assert not at.exception
    assert any("has no attention" in i.value for i in at.info)


def test_exports(page_models):
    at = open_page(model="test-reverse", text="abcdef")
    assert not at.exception
    labels = [b.label for b in at.main.get("download_button")]  # the sidebar holds "Download this view"
    assert labels == ["Weights as CSV", "Tensors as NPZ"]


def test_input_is_shared_across_pages_and_kept_in_the_url(page_models):
    at = open_page(model="test-reverse")
    task = checkpoint.load_checkpoint(checkpoint_folder.USER_DIR / "test-reverse").task()
    assert at.text_input(key="input_box").value == task.probes[0][0]  # a test input until one is typed
    at.text_input(key="input_box").input("hgfed").run()
    assert at.query_params["text"] in ("hgfed", ["hgfed"])
    at.switch_page("pages/mechanics.py").run()
    assert not at.exception
    assert at.text_input(key="input_box").value == "hgfed"
    at.switch_page("pages/positional.py").run()  # a page without the input box
    at.switch_page(PAGE).run()
    assert at.text_input(key="input_box").value == "hgfed"


def test_ranking_every_head(page_models):
    at = open_page(model="test-reverse", text="abcdef")
    at.toggle(key="rank_heads").set_value(True).run()
    assert not at.exception
    ranking = at.dataframe[1].value
    assert len(ranking) == 8 and list(ranking["loss_change"]) == sorted(ranking["loss_change"], reverse=True)
    picked = checkpoint.load_checkpoint(checkpoint_folder.USER_DIR / "test-reverse")
    top = ranking.iloc[0]
    module = {"encoder self": "encoder.layers.{}.self_attn", "decoder self": "decoder.layers.{}.self_attn",
              "cross": "decoder.layers.{}.cross_attn"}[top["kind"]].format(top["layer"])
    alone = ablation_summary(picked.model, [next(picked.task().batches("test", 256))], {(module, top["head"])})
    assert np.isclose(top["loss_change"], alone["loss_change"], atol=1e-5)


def test_rnn_attention_can_be_switched_off(page_models):
    at = open_page(model="test-rnn", text="abcd")
    at.multiselect(key="ablate").set_value([("cross", 0, 0)]).run()
    assert not at.exception
    picked, run = reference("test-rnn", "abcd")
    after = ablate_input(picked.model, picked.task(), run, {("decoder.attention", 0)})
    assert any(f"`` {after.output_after} ``" in m.value and "1 head off" in m.value for m in at.markdown)


def test_another_model_gets_its_own_example_input(page_models):
    at = open_page(model="test-reverse")
    at.sidebar.selectbox(key="model").set_value("test-lm").run()
    assert not at.exception
    lm = checkpoint.load_checkpoint(checkpoint_folder.USER_DIR / "test-lm").task()
    assert at.text_input(key="input_box").value in lm.tokenizer.decode(lm.probes[0])


def test_output_with_newlines_and_backticks_stays_on_one_line():
    assert markdown.code("a\nb`c") == "`` a\\nb`c ``"


def test_a_language_model_shows_its_head_types(page_models):
    at = open_page(model="test-lm", text="the cat")
    assert not at.exception
    assert at.radio(key="head_type").options == ["previous_token", "duplicate_token", "induction"]
    picked = checkpoint.load_checkpoint(checkpoint_folder.USER_DIR / "test-lm")
    types = head_type_table(picked.model)
    shown = z_of(charts(at)["head_type_map"])  # (layers, heads)
    np.testing.assert_allclose(shown, types.pivot(index="layer", columns="head", values="previous_token").to_numpy(),
                               atol=1e-6)
    at.radio(key="head_type").set_value("induction").run()
    np.testing.assert_allclose(z_of(charts(at)["head_type_map"]),
                               types.pivot(index="layer", columns="head", values="induction").to_numpy(), atol=1e-6)
    assert not any(k == "brackets_table" for k in (d.key for d in at.dataframe))  # a prose model: no brackets


def test_a_seq2seq_model_has_no_head_types(page_models):
    at = open_page(model="test-reverse", text="abc")
    assert not at.exception and not [r for r in at.radio if r.key == "head_type"]


def test_a_corpus_from_another_python_is_named(monkeypatch):
    from attnviz.data import stdlib
    monkeypatch.setattr(stdlib, "CORPUS_PYTHON", "3.99")
    at = open_page(model="prose-lm", text="The function")
    assert not at.exception and any("Python 3.99" in info.value for info in at.info)


def test_zoomed_heatmap_equals_torch_multihead_attention_on_the_first_layer(page_models):
    """Encoder layer 0, head 0, computed here without attnviz's attention: the input written out (token embedding
    * sqrt(d) + the sin/cos formula, then the layer's LayerNorm) through nn.MultiheadAttention with copied weights."""
    import math
    at = open_page(model="test-reverse", text="abcdef")
    picked = checkpoint.load_checkpoint(checkpoint_folder.USER_DIR / "test-reverse")
    model, tokenizer = picked.model.eval(), picked.tokenizer
    config, layer = model.config, model.encoder.layers[0]
    assert config.norm_first and config.positional == "sinusoidal" and config.scale_embeddings
    ids = torch.tensor(tokenizer.encode("abcdef") + [tokenizer.eos_id])  # (S,)
    D, S = config.d_model, len(ids)
    pos, i = np.arange(S)[:, None], np.arange(D)[None, :]
    angle = pos / 10000 ** ((i - i % 2) / D)
    table = torch.tensor(np.where(i % 2 == 0, np.sin(angle), np.cos(angle)), dtype=torch.float32)  # (S, D)
    x = layer.norm1(model.encoder.embed.tokens.weight[ids] * math.sqrt(D) + table)[None]  # (1, S, D)
    reference = torch.nn.MultiheadAttention(D, config.n_heads, batch_first=True)
    attention = layer.self_attn
    with torch.no_grad():
        reference.in_proj_weight.copy_(torch.cat([attention.q_proj.weight, attention.k_proj.weight,
                                                  attention.v_proj.weight]))
        reference.in_proj_bias.copy_(torch.cat([attention.q_proj.bias, attention.k_proj.bias, attention.v_proj.bias]))
        _, weights = reference(x, x, x, need_weights=True, average_attn_weights=False)  # (1, H, S, S)
    zoom = z_of(charts(at)["zoom"])
    assert zoom.shape == (S, S)
    np.testing.assert_allclose(zoom, weights[0, 0].numpy(), atol=1e-5)


@pytest.fixture(scope="module")
def one_head_model():
    """An untrained Transformer of one encoder and one decoder layer with one head each, saved as "test-one-head"."""
    from attnviz import build_model
    from attnviz.data.tasks import make_task
    from attnviz.models.architectures import model_config
    task = make_task("reverse", alphabet="abc", min_len=3, max_len=6, n_train=50, n_val=10, n_test=10)
    model = build_model(model_config("transformer", task.tokenizer, d_model=8, n_heads=1, n_encoder_layers=1,
                                     n_decoder_layers=1, d_ff=16, max_len=32))
    checkpoint.save_checkpoint(checkpoint_folder.USER_DIR / "test-one-head", model, task.tokenizer,
                               {"task": task.spec()})
    return "test-one-head"


def test_a_one_layer_one_head_model_reads_sensibly(one_head_model):
    at = open_page(model=one_head_model, text="abcab")
    assert not at.exception
    figures = charts(at)
    assert "grid" not in figures and "zoom" in figures  # no lone thumbnail above the same heatmap
    assert figures["rollout"]["layout"]["title"]["text"].startswith("Rollout of layer 0 alone")
    assert "0–0" not in figures["rollout"]["layout"]["title"]["text"]
    assert not at.slider  # nothing to slide over


SPRINTF = re.compile(r"%[+\- 0#]*\d*(?:\.\d+)?[bcdieufgosxXj]")  # one conversion of sprintf-js, which Streamlit uses
PRESETS = {"plain", "localized", "percent", "dollar", "euro", "yen", "accounting", "compact", "scientific",
           "engineering"}


def test_every_table_number_format_is_one_streamlit_can_apply(page_models):
    at = open_page(model="test-reverse", text="abcdef")
    at.toggle(key="rank_heads").set_value(True).run()
    formats = {name: config["type_config"]["format"] for table in at.dataframe
               for name, config in json.loads(table.proto.columns).items() if "format" in config.get("type_config", {})}
    assert {"loss_change", "accuracy_change", "entropy"} <= set(formats)
    for name, spec in formats.items():
        assert spec in PRESETS or SPRINTF.fullmatch(spec.replace("%%", "")), (name, spec)  # "%+.2%": a red triangle
    assert formats["accuracy_change"] == formats["loss_change"]


def test_every_head_of_the_grid_has_a_click_target_over_it(page_models):
    grid = charts(open_page(model="test-reverse", text="abcdef"))["grid"]
    heads, targets = heatmaps(grid), [trace for trace in grid["data"] if trace["type"] == "scatter"]
    assert len(targets) == len(heads) == 4 and grid["layout"]["clickmode"] == "event+select"
    for target in targets:
        layer, head = target["customdata"][0]
        under = heads[layer * 2 + head]
        assert under["name"] == f"layer {layer} head {head}"
        assert (target.get("xaxis"), target.get("yaxis")) == (under.get("xaxis"), under.get("yaxis"))  # same subplot


def head_view_lines(figure):
    """{(head, query, key): opacity} of a head view's lines."""
    return {tuple(trace["customdata"][0]): trace["opacity"] for trace in figure["data"] if trace["mode"] == "lines"}


def test_head_view_lines_are_the_captured_weights(page_models):
    from attnviz.app.head_view import MIN_WEIGHT
    from attnviz.models.hooks import capture
    at = open_page(model="test-reverse", text="abcdef", attention="cross", layer="0", head="1")
    picked = checkpoint.load_checkpoint(checkpoint_folder.USER_DIR / "test-reverse")
    _, run = reference("test-reverse", "abcdef")
    with capture(picked.model) as cache, torch.no_grad():  # a capture of our own, on the same tokens
        picked.model(run.src, run.tgt_in)
    captured = cache["decoder.layers.0.cross_attn.hook_pattern"][0]  # (H, Tq, Tk)
    figure = charts(at)["head_view"]
    escaped = lambda labels: [html.escape(label) for label in labels]  # plotly reads "<bos>" as a tag
    assert figure["data"][0]["text"] == escaped(run.tgt_labels) and figure["data"][1]["text"] == escaped(run.src_labels)
    expected = {(1, i, j): float(w) for (i, j), w in np.ndenumerate(captured[1].numpy()) if w >= MIN_WEIGHT}
    lines = head_view_lines(figure)
    assert lines.keys() == expected.keys()
    assert np.allclose([lines[k] for k in expected], list(expected.values()), atol=1e-6)

    at.multiselect(key="head_view_heads").set_value([0, 1]).run()
    at.selectbox(key="head_view_focus").set_value(2).run()
    lines = head_view_lines(charts(at)["head_view"])
    expected = {(h, 2, j): float(captured[h, 2, j]) for h in (0, 1) for j in range(captured.shape[-1])
                if captured[h, 2, j] >= MIN_WEIGHT}
    assert lines.keys() == expected.keys()  # the focused token's lines only, of both heads
    assert np.allclose([lines[k] for k in expected], list(expected.values()), atol=1e-6)
    colours = {trace["line"]["color"] for trace in charts(at)["head_view"]["data"] if trace["mode"] == "lines"}
    assert len(colours) == 2


# Texts of other files the page shows, still English until those files are translated (the lead's whole-app test
# covers them): the library's statistics and head types, the rollout texts, the input box's help and the hover texts
# of the figures.
OTHER_FILES_ENGLISH = (*STATS.values(), *HEAD_TYPES.values(), ROLLOUT_CAPTION, rollout_title(0), rollout_title(1),
                       "Shared by every page and kept in the link. Press Enter to apply.",  # app/ui/attention.py
                       "click to zoom", "click to focus")  # app/figures.py, app/head_view.py


def english_on_main(at, run):
    """The English phrases left in the page's main area (the sidebar is the ui package's), besides the tokens and
    the output of `run` and OTHER_FILES_ENGLISH."""
    tokens = [markdown.code(label) for label in [*(run.src_labels or []), *run.tgt_labels, run.output]]
    return english_left(SimpleNamespace(main=at.main, sidebar=()), allowed=[*tokens, *OTHER_FILES_ENGLISH])


def test_a_transformer_in_chinese_with_heads_off_and_ranked(page_models, chinese):
    at = open_page(model="test-reverse", text="abcdef", lang="zh")
    at.multiselect(key="ablate").set_value([("cross", 0, 0), ("encoder self", 1, 1)]).run()
    at.toggle(key="rank_heads").set_value(True).run()
    assert not at.exception
    picked, run = reference("test-reverse", "abcdef")
    assert english_on_main(at, run) == []
    assert [tab.label for tab in at.tabs] == [chinese.gettext(tab) for tab in ("Heads", "Head view", "Head statistics",
                                                                               "Rollout", "Switch heads off", "Export")]
    entropy = head_stats(run.cache["encoder.layers.0.self_attn.hook_pattern"])["entropy"][0]
    assert any(c.value.startswith(f"这个头：熵为 {entropy:.2f} 奈特") for c in at.caption)
    after = ablate_input(picked.model, picked.task(), run, {("decoder.layers.0.cross_attn", 0),
                                                           ("encoder.layers.1.self_attn", 1)})
    assert any(m.value == f"**输出（关闭 2 个头）：** {markdown.code(after.output_after)}" for m in at.markdown)
    loss = next(m for m in at.metric if m.label == "测试集损失")
    assert loss.help.startswith("关闭前：") and "词元" in loss.help
    assert [trace["name"] for trace in charts(at)["ablate_probs"]["data"]] == ["所有头开启", "关闭所选头"]
    assert charts(at)["grid"]["layout"]["title"]["text"].startswith("2 层 × 2 个头：")


def test_cross_attention_in_chinese_says_rollout_needs_self_attention(page_models, chinese):
    at = open_page(model="test-reverse", text="abcdef", attention="cross", lang="zh")
    assert not at.exception
    assert english_on_main(at, reference("test-reverse", "abcdef")[1]) == []
    assert any(info.value.startswith("注意力展开只沿一个自注意力堆栈计算") for info in at.info)


def test_a_language_model_in_chinese_with_its_head_types(page_models, chinese):
    at = open_page(model="test-lm", text="the cat", lang="zh")
    assert not at.exception
    assert english_on_main(at, reference("test-lm", "the cat")[1]) == []
    types = head_type_table(checkpoint.load_checkpoint(checkpoint_folder.USER_DIR / "test-lm").model)
    assert any(c.value.endswith(f"把权重均匀分散的头在这里得 {types['previous_token chance'].iloc[0]:.2f}。")
               for c in at.caption)


def test_rnns_in_chinese(page_models, chinese):
    at = open_page(model="test-rnn", text="abcd", lang="zh")
    assert not at.exception
    assert english_on_main(at, reference("test-rnn", "abcd")[1]) == []
    at = open_page(model="test-lstm", text="abcd", lang="zh")
    assert not at.exception
    assert english_on_main(at, reference("test-lstm", "abcd")[1]) == []
    assert any(info.value.startswith("test-lstm 没有注意力") and "**RNN 与注意力**" in info.value for info in at.info)
