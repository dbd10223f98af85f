"""The step-by-step decoding page through AppTest, on small trained models (and `page_models` for the rest), in
English and in Chinese.

Expected outputs and probabilities come from running attnviz.decoding on the same checkpoint here."""
import base64
import re
import shutil
from types import SimpleNamespace

import numpy as np
import plotly.io
import pyarrow
import pytest
import torch
from page_helpers import ENGLISH_PHRASE, NOT_PROSE, english_left, shown
from streamlit.testing.v1 import AppTest

from attnviz.app.markdown import code
from attnviz.decoding.search import METHODS
from attnviz.interpret.decoding_plan import describe_sampling, stretch_notes
from attnviz.interpret.decoding_views import TREE_STEPS, beam_tree
from attnviz.training import checkpoint, checkpoint_folder

APP = "../../app.py"
PAGE = "pages/decoding.py"
MODEL = "test-decoding-reverse"


@pytest.fixture(scope="module")
def trained():
    """A small Transformer trained on reversing 3 to 6 letters until it also ends its outputs (with EOS)."""
    from attnviz import build_model
    from attnviz.data.tasks import make_task
    from attnviz.models.architectures import model_config
    from attnviz.training.config import TrainConfig
    from attnviz.training.loop import train
    from attnviz.training.runs import run_meta

    task = make_task("reverse", min_len=3, max_len=6, alphabet="abcdef", n_train=2000, n_val=50, n_test=50)
    torch.manual_seed(0)
    model = build_model(model_config("transformer", task.tokenizer, d_model=32, n_heads=2, d_ff=64, max_len=24))
    config = TrainConfig(steps=200, batch_size=64, lr=3e-3, warmup=20, eval_every=1000, snapshot_every=0)
    result = train(model, task, config)
    path = checkpoint.save_checkpoint(checkpoint_folder.USER_DIR / MODEL, model, task.tokenizer,
                                      run_meta(model.eval(), task, config, result))
    yield MODEL
    shutil.rmtree(path, ignore_errors=True)


def open_page(timeout=60, **query_params):
    """A new session's first run of the page with these URL parameters; `timeout` (s) for each script run."""
    at = AppTest.from_file(APP, default_timeout=timeout)
    at.query_params.update(query_params)
    return at.switch_page(PAGE).run()


def chart(at, key):
    """The plotly figure of the chart with this key (read arrays with `array`)."""
    found = [plotly.io.from_json(c.proto.spec) for c in at.get("plotly_chart") if c.proto.id.endswith(f"-{key}")]
    assert len(found) == 1, f"no chart {key!r}"
    return found[0]


def array(value):
    """A figure's data array: plotly stores numpy arrays as {"dtype", "bdata" (base64), "shape"}."""
    if isinstance(value, dict):
        shape = [int(n) for n in str(value.get("shape", -1)).split(",")]
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]).reshape(shape)
    return np.asarray(value, dtype=float)


def displayed(static_table):
    """The cells of an st.table as the page formats them (its Styler's display values), as strings."""
    return pyarrow.ipc.open_stream(static_table.proto.arrow_data.styler.display_values).read_pandas()


def table(at, column):
    """The one table on the page with this column (AppTest finds dataframes by position, not by key)."""
    found = [frame.value for frame in at.dataframe if column in frame.value.columns]
    assert len(found) == 1, f"{len(found)} tables with a column {column!r}"
    return found[0]


CHIP = re.compile(r"`` (.*?) ``|:orange-badge\[:material/arrow_downward: \*\*(.*?)\*\*\]")


def output_chips(at):
    """[(token label, marked as the step shown)] of the page's 'Output so far' line, in order."""
    line = next(m.value for m in at.markdown if m.value.startswith("**Output so far**"))
    chips = CHIP.findall(line.split("”: ", 1)[1])
    return [(code or re.sub(r"\\(.)", r"\1", badge), bool(badge)) for code, badge in chips]


def plain(markdown_text):
    """What Markdown that `attnviz.app.markdown.escape` wrote shows as text: its backslash escapes undone."""
    return re.sub(r"\\(.)", r"\1", markdown_text)


def output_labels(at):
    """The output tokens the page shows, in order."""
    return [label for label, _ in output_chips(at)]


def reference(name, text, method="greedy", **kwargs):
    """(tokenizer, Decoded) of the library on the same checkpoint and input."""
    picked = checkpoint.load_checkpoint(name)  # the test's own models, then the shipped ones
    ids = picked.task().encode_source(text, picked.model.config.max_len)
    return picked.tokenizer, METHODS[method](picked.model, picked.tokenizer, ids, **kwargs)


def next_token_probs(name, decoded, tokens, temperature=1.0):
    """Reference: the next-token distribution after `decoded`'s context and `tokens`, from one full forward of the
    model (no cache, no trace) at this temperature. (V,)"""
    model = checkpoint.load_checkpoint(name).model.eval()
    sequence = torch.tensor([decoded.context[0].tolist() + list(tokens)])  # (1, T)
    with torch.no_grad():
        logits = model(decoded.source, sequence) if model.has_encoder else model(sequence)  # (1, T, V)
    return (logits[0, -1] / temperature).softmax(-1).numpy()


def test_next_step_and_run_to_end(trained):
    at = open_page(model=MODEL, text="abcdef")
    assert not at.exception and not at.error
    tokenizer, full = reference(MODEL, "abcdef", max_new_tokens=40)
    expected = tokenizer.labels(full.ids())
    assert tokenizer.decode(full.ids()) == "fedcba"  # the model learned its task
    assert output_labels(at) == expected[:1]

    at.button(key="dec_next").click().run()
    assert output_labels(at) == expected[:2]
    assert at.slider(key="dec_step").value == 2  # the newest step is the one shown
    assert chart(at, "dec_bars").layout.title.text.startswith("Step 2")
    cross = array(chart(at, "dec_cross").data[0].z)
    assert cross.shape == (2, 7)  # one row per step so far, over "abcdef" + EOS
    np.testing.assert_allclose(cross, full.attention("decoder.layers.0.cross_attn.hook_pattern")[0, :2], atol=1e-6)

    at.button(key="dec_run").click().run()
    assert not at.exception
    assert output_labels(at) == expected and expected[-1] == "<eos>"
    assert any("ended with <eos>" in plain(c.value) for c in at.caption)
    assert at.button(key="dec_next").disabled and at.button(key="dec_run").disabled
    steps = table(at, "chose")
    assert list(steps["chose"]) == expected

    at.button(key="dec_reset").click().run()
    assert output_labels(at) == expected[:1] and not at.button(key="dec_next").disabled


def test_all_heads_at_once(trained):
    at = open_page(model=MODEL, text="abcdef")
    at.button(key="dec_next").click().run()
    at.toggle(key="dec_all_heads").set_value(True).run()
    assert not at.exception
    _, full = reference(MODEL, "abcdef", max_new_tokens=40)
    cross = full.attention("decoder.layers.0.cross_attn.hook_pattern")  # (H, T, S)
    grid = chart(at, "dec_cross")
    assert [trace.name for trace in grid.data] == [f"layer 0 head {h}" for h in range(cross.shape[0])]
    for h, trace in enumerate(grid.data):  # the first two steps of every head
        np.testing.assert_allclose(array(trace.z), cross[h, :2], atol=1e-6)


def test_forcing_a_token_changes_the_continuation(trained):
    at = open_page(model=MODEL, text="abcdef")
    at.button(key="dec_run").click().run()
    at.slider(key="dec_step").set_value(2).run()
    assert [marked for _, marked in output_chips(at)] == [i == 1 for i in range(len(output_chips(at)))]
    tokenizer, before = reference(MODEL, "abcdef", max_new_tokens=40)
    forced = tokenizer.encode("a")[0]
    assert before.ids()[1] != forced
    at.selectbox(key="dec_force_token").set_value(forced).run()
    at.button(key="dec_force").click().run()
    assert not at.exception
    _, after = reference(MODEL, "abcdef", max_new_tokens=40, forced={1: forced})
    shown = output_labels(at)
    assert shown[1] == "a" and shown == tokenizer.labels(after.ids())
    assert shown[2:] != tokenizer.labels(before.ids())[2:]  # the rest was decoded again after the forced token
    assert any("step 2 forced to `` a ``" in c.value for c in at.caption)
    assert any("was forced to" in m.value for m in at.markdown)


def test_temperature_redraws_the_distribution_of_the_current_step(trained):
    at = open_page(model=MODEL, text="abcdef")
    at.button(key="dec_next").click().run()
    before = chart(at, "dec_bars").data
    assert len(before) == 1  # the model's own distribution
    at.slider(key="dec_temperature").set_value(2.0).run()
    after = chart(at, "dec_bars").data
    assert [trace.name for trace in after] == ["model (temperature 1)", "with these settings"]
    np.testing.assert_allclose(array(after[0].y), array(before[0].y), atol=1e-6)
    _, run = reference(MODEL, "abcdef", max_new_tokens=2)
    step = run.steps[1]
    expected = step.probs(temperature=2.0)[0]  # (V,)
    assert len(chart(at, "dec_bars").layout.xaxis.ticktext) == 10
    np.testing.assert_allclose(array(after[1].y), expected.sort(descending=True).values[:10], atol=1e-6)
    assert array(after[1].y)[0] < array(before[0].y)[0]  # flatter: the favourite lost probability

    at.radio(key="method").set_value("sample").run()  # now the tokens are drawn from the distribution shown
    assert not at.exception
    tokenizer, sampled = reference(MODEL, "abcdef", "sample", max_new_tokens=2, temperature=2.0, seed=0)
    assert output_labels(at) == tokenizer.labels(sampled.ids())
    np.testing.assert_allclose(array(chart(at, "dec_bars").data[1].y), array(after[1].y), atol=1e-6)


def test_beam_search_shows_hypotheses_and_tree(trained):
    at = open_page(model=MODEL, text="abcdef", method="beam")
    assert at.radio(key="method").value == "beam"
    at.slider(key="dec_width").set_value(2).run()
    at.button(key="dec_run").click().run()
    assert not at.exception
    tokenizer, beam = reference(MODEL, "abcdef", "beam", max_new_tokens=40, width=2, n_best=2)
    hypotheses = at.table[0].value  # a static table: the whole output shows, however long
    assert list(hypotheses["output"]) == [code(tokenizer.decode(h.tokens)) for h in beam.hypotheses]
    assert hypotheses["log-prob"].tolist() == pytest.approx([h.logprob for h in beam.hypotheses], abs=1e-5)
    assert list(displayed(at.table[0])["log-prob"]) == [f"{h.logprob:.3f}" for h in beam.hypotheses]
    tree = chart(at, "dec_tree")
    traces = {trace.name: trace for trace in tree.data}
    assert {"kept", "pruned", "best hypothesis"} <= set(traces)
    nodes = beam_tree(beam, tokenizer)
    assert sum(len(traces[f].x) for f in ("start", "kept", "finished", "pruned")) == len(nodes)
    assert output_labels(at) == tokenizer.labels(beam.ids())


def test_bad_input_shows_a_message_and_the_page_keeps_working(trained):
    at = open_page(model=MODEL, text="")
    assert not at.exception
    assert "empty" in shown(at.warning[0])
    at.text_input(key="input_box").set_value("abc" * 10).run()
    assert not at.exception and "the most this model takes is 23" in shown(at.error[0])
    at.text_input(key="input_box").set_value("ab1c").run()
    assert not at.exception and not at.error
    assert "'1'" in shown(at.warning[0]) and "<unk>" in shown(at.warning[0])
    at.text_input(key="input_box").set_value("abc").run()
    assert not at.exception and not at.error and not at.warning
    at.button(key="dec_run").click().run()
    assert "".join(output_labels(at)) == "cba<eos>"


def test_language_model_prompt_and_sampling(page_models):
    at = open_page(model="test-lm", text="the cat", method="sample")
    assert not at.exception and not at.error
    at.number_input(key="dec_max_new").set_value(6).run()
    at.button(key="dec_run").click().run()
    tokenizer, sampled = reference("test-lm", "the cat", "sample", max_new_tokens=6, seed=0)
    assert output_labels(at)[-len(sampled.ids()):] == tokenizer.labels(sampled.ids())
    assert [c.proto.id.rsplit("-", 1)[1] for c in at.get("plotly_chart")] == ["dec_bars", "dec_decoder_self"]
    compare = table(at, "setting")
    assert list(compare["method"]) == ["greedy", "beam"] + ["sample"] * 5
    assert compare["output"].iloc[2] == tokenizer.decode(sampled.ids())  # seed 0, as decoded above


@pytest.mark.parametrize("name", ["test-rnn", "test-lstm"])
def test_rnn_models_decode_with_or_without_attention(page_models, name):
    at = open_page(model=name, text="abcd")
    at.number_input(key="dec_max_new").set_value(5).run()
    if not at.button(key="dec_run").disabled:  # an untrained model may end at once
        at.button(key="dec_run").click().run()
    assert not at.exception and not at.error
    tokenizer, greedy = reference(name, "abcd", max_new_tokens=5)
    assert output_labels(at) == tokenizer.labels(greedy.ids())
    shown = [c.proto.id.rsplit("-", 1)[1] for c in at.get("plotly_chart")]
    if name == "test-rnn":
        assert shown == ["dec_bars", "dec_cross"]
        assert array(chart(at, "dec_cross").data[0].z).shape == (len(greedy.ids()), 5)  # "abcd" + EOS
    else:
        assert shown == ["dec_bars"] and "no attention" in at.info[0].value


def test_bars_equal_the_softmax_of_a_full_forward_on_the_prefix(trained):
    """Independent of the decoder's caches and traces: the model's own forward on source + the whole prefix so far."""
    at = open_page(model=MODEL, text="abcdef")
    at.button(key="dec_next").click().run()
    at.button(key="dec_next").click().run()  # step 3 shown: the prefix is BOS + the two tokens chosen before
    picked = checkpoint.load_checkpoint(checkpoint_folder.USER_DIR / MODEL)
    tokenizer, model = picked.tokenizer, picked.model.eval()
    src = torch.tensor([tokenizer.encode("abcdef") + [tokenizer.eos_id]])  # (1, S)
    label_ids = {label: i for i, label in enumerate(tokenizer.labels(range(tokenizer.vocab_size)))}
    prefix = [tokenizer.bos_id] + [label_ids[label] for label in output_labels(at)[:2]]
    with torch.no_grad():
        probs = model(src, torch.tensor([prefix]))[0, -1].softmax(-1).numpy()  # (V,)
    bars = chart(at, "dec_bars").data[0]
    shown = [label_ids[label] for label in bars.customdata]
    assert len(shown) == 10 and chart(at, "dec_bars").layout.title.text.startswith("Step 3")
    np.testing.assert_allclose(array(bars.y), probs[shown], atol=1e-5)
    assert label_ids[output_labels(at)[2]] == int(probs.argmax())  # greedy chose the most probable token


def test_new_sampling_settings_apply_from_the_next_step_and_replay_redoes_every_step():
    """The issue's report on the shipped language model: at temperature 1.5 the same seed draws other tokens, so a
    change of temperature after three steps must keep the three tokens and sample only the fourth with it."""
    at = open_page(model="prose-lm", text="callable", method="sample", max_new="8", timeout=300)
    for _ in range(2):
        at.button(key="dec_next").click().run()
    tokenizer, cold = reference("prose-lm", "callable", "sample", max_new_tokens=3, seed=0)
    _, hot = reference("prose-lm", "callable", "sample", max_new_tokens=4, temperature=1.5, seed=0)
    assert hot.ids()[:3] != cold.ids()  # the premise: decoding again at 1.5 would rewrite them
    assert output_labels(at)[-3:] == tokenizer.labels(cold.ids())

    at.slider(key="dec_temperature").set_value(1.5).run()
    assert not at.exception and output_labels(at)[-3:] == tokenizer.labels(cold.ids())
    assert any("apply from step 4 on" in plain(c.value) for c in at.caption)
    at.button(key="dec_next").click().run()
    written = output_labels(at)
    assert written[-4:-1] == tokenizer.labels(cold.ids()) and at.slider(key="dec_step").value == 4
    bars = chart(at, "dec_bars")
    assert bars.layout.title.text.startswith("Step 4")
    assert [trace.name for trace in bars.data] == ["model (temperature 1)",
                                                   "drawn from (temperature 1.5, no top-k, no top-p)"]
    label_ids = {label: i for i, label in enumerate(tokenizer.labels(range(tokenizer.vocab_size)))}
    shown = [label_ids[label] for label in bars.data[0].customdata]
    np.testing.assert_allclose(array(bars.data[1].y), next_token_probs("prose-lm", cold, cold.ids(), 1.5)[shown],
                               atol=1e-5)
    np.testing.assert_allclose(array(bars.data[0].y), next_token_probs("prose-lm", cold, cold.ids())[shown], atol=1e-5)
    assert next_token_probs("prose-lm", cold, cold.ids(), 1.5)[label_ids[written[-1]]] > 0
    assert any("steps 1–3: temperature 1, no top-k, no top-p, seed 0; step 4: temperature 1.5" in plain(c.value)
               for c in at.caption)

    at.button(key="dec_replay").click().run()
    assert not at.exception
    assert output_labels(at)[-4:] == tokenizer.labels(hot.ids())  # a fresh run at 1.5
    assert at.button(key="dec_replay").disabled


def session_view(at):
    """What a session shows of its decoding: status, output, the step looked at and the probabilities there."""
    bars = chart(at, "dec_bars")
    return ([c.value for c in at.caption if "taken" in c.value], output_chips(at), at.slider(key="dec_step").value,
            bars.layout.title.text, [(trace.name, array(trace.y).tolist()) for trace in bars.data])


@pytest.mark.parametrize("method", ["sample", "beam"])
def test_a_link_rebuilds_the_same_decoding_at_the_same_step(trained, method):
    at = open_page(model=MODEL, text="abcdef", method=method)
    at.slider(key="dec_temperature").set_value(2.0).run()
    for _ in range(2):
        at.button(key="dec_next").click().run()
    at.slider(key="dec_temperature").set_value(1.2).run()
    at.number_input(key="dec_top_k").set_value(4).run()
    for _ in range(2):
        at.button(key="dec_next").click().run()
    at.slider(key="dec_step").set_value(4).run()
    tokenizer = checkpoint.load_checkpoint(MODEL).tokenizer
    at.selectbox(key="dec_force_token").set_value(tokenizer.encode("a")[0]).run()
    at.button(key="dec_force").click().run()
    at.slider(key="dec_step").set_value(3).run()
    assert not at.exception and any("5 steps taken" in c.value for c in at.caption)
    link = dict(at.query_params)
    again = open_page(**link)
    assert not again.exception and not again.warning
    assert session_view(again) == session_view(at)
    assert dict(again.query_params) == link
    if method == "sample":  # step 1 at temperature 1, steps 2-3 at 2, then 1.2 with top-k 4; step 4 forced
        _, expected = reference(MODEL, "abcdef", "sample", max_new_tokens=5, seed=0,
                                forced={3: tokenizer.encode("a")[0]},
                                changes={1: dict(temperature=2.0), 3: dict(temperature=1.2, top_k=4)})
        assert output_labels(again) == tokenizer.labels(expected.ids())
        assert link["segments"] == "1:1.0,0,1.0,0;2:2.0,0,1.0,0;4:1.2,4,1.0,0"


def test_bad_link_values_fall_back_with_a_note_shown_as_text(trained):
    hostile = "![x](http://example.com/x.png)"
    at = open_page(model=MODEL, text="abcdef", method="sample", steps="many", temperature="9", seed=hostile,
                   forced="2:99999", segments="1:x", step="0")
    assert not at.exception and not at.error
    notes = [plain(w.value) for w in at.warning]
    assert any("temperature='9' is outside 0.0 to 2.0" in n for n in notes)
    assert any(f"seed={hostile!r} is not a whole number" in n for n in notes)
    assert any("steps='many' is not a whole number: starting at step 1" in n for n in notes)
    assert not any("![" in w.value for w in at.warning)  # escaped: no image fetched for any viewer
    assert at.slider(key="dec_temperature").value == 1.0 and at.number_input(key="dec_seed").value == 0
    _, fresh = reference(MODEL, "abcdef", "sample", max_new_tokens=1, seed=0)
    assert len(output_labels(at)) == 1 == len(fresh.ids())
    at = open_page(model=MODEL, text="abcdef", method="sample", steps="3", forced="2:99999", segments="2:1.0,0,1.0,0")
    notes = [plain(w.value) for w in at.warning]
    assert any("segments='2:1.0,0,1.0,0' do not fit" in n for n in notes)
    assert any("forced='2:99999' does not fit" in n for n in notes)
    assert any("3 steps taken" in c.value for c in at.caption)
    assert not any("forced to" in c.value for c in at.caption)


def test_a_long_beam_search_shows_a_window_of_the_tree_and_every_hypothesis_whole():
    at = open_page(model="prose-lm", text="callable", method="beam", timeout=600)  # a shipped model: slow
    at.button(key="dec_run").click().run()
    assert not at.exception
    tokenizer, beam = reference("prose-lm", "callable", "beam", max_new_tokens=40, width=3, n_best=3)
    n_steps = len(beam.steps)
    assert n_steps > TREE_STEPS
    assert list(at.table[0].value["output"]) == [code(tokenizer.decode(h.tokens)) for h in beam.hypotheses]

    def tree_steps():  # the steps of the tree's candidates, and those of the beams they hang from
        traces = {trace.name: trace for trace in chart(at, "dec_tree").data}
        return sorted({int(x) for fate in ("kept", "finished", "pruned", "start") if fate in traces
                       for x in traces[fate].x})

    assert tree_steps() == list(range(n_steps - TREE_STEPS, n_steps + 1))  # the newest steps, under their beams
    at.select_slider(key="dec_tree_last").set_value(TREE_STEPS + 2).run()
    assert tree_steps() == list(range(2, TREE_STEPS + 3))
    nodes = beam_tree(beam, tokenizer, steps=(3, TREE_STEPS + 2))
    traces = {trace.name: trace for trace in chart(at, "dec_tree").data}
    assert sum(len(traces[fate].x) for fate in ("kept", "finished", "pruned") if fate in traces) == len(nodes)


OTHER_FILES_ENGLISH = ("Shared by every page and kept in the link. Press Enter to apply.",  # app/ui/attention.py
                       "log-prob %{customdata[0]:.3f}<br>score %{customdata[1]:.3f}",  # figures.beam_tree's hover
                       "query %{y} key %{x}<br>weight %{z:.3f}")  # figures.attention_grid's hover
STOPS_ZH = {"eos": "以 <eos> 结束", "max_new_tokens": "达到了新词元数上限"}


def english_on_main(at, tokenizer, *allowed):
    """The English phrases left in the page's main area (the sidebar is the ui package's), besides `allowed`, the
    model's own words (its tokens as chips, the outputs in the page's tables), the sampling settings of each stretch
    of steps as attnviz.interpret.decoding_plan describes them, and OTHER_FILES_ENGLISH."""
    chips = [code(label) for label in tokenizer.labels(range(tokenizer.vocab_size))]
    outputs = [cell for frame in [*at.dataframe, *at.table] for column in ("output", "tokens")
               if column in frame.value.columns for cell in frame.value[column]
               if ENGLISH_PHRASE.search(NOT_PROSE.sub(" ", cell))]  # a shorter one would blank letters out of words
    stretches = [dict(items) for _first, items in at.session_state["dec_plan"].stretches]
    sampling = [describe_sampling(view) for settings in stretches if "temperature" in settings  # sampling's
                for view in (settings, {name: value for name, value in settings.items() if name != "seed"})]
    return english_left(SimpleNamespace(main=at.main, sidebar=()),
                        allowed=[*allowed, *chips, *outputs, *sampling, *OTHER_FILES_ENGLISH])


def test_step_by_step_in_chinese_with_a_forced_token(trained, chinese):
    at = open_page(model=MODEL, text="abcdef", lang="zh")
    assert not at.exception
    assert at.title[0].value == "逐步解码"
    assert [at.button(key=key).label for key in ("dec_next", "dec_run", "dec_reset")] == ["下一步", "运行到结束", "重置"]
    assert at.radio(key="method").options == ["贪心搜索", "采样", "束搜索"]
    assert at.text_input(key="input_box").label == "源序列"
    assert any(c.value == "贪心搜索不使用温度、top-k 和 top-p：它们只会重绘下面的图。" for c in at.caption)
    at.button(key="dec_run").click().run()
    at.slider(key="dec_step").set_value(2).run()
    tokenizer = checkpoint.load_checkpoint(MODEL).tokenizer
    forced = tokenizer.encode("a")[0]
    at.selectbox(key="dec_force_token").set_value(forced).run()
    at.button(key="dec_force").click().run()
    assert not at.exception
    assert english_on_main(at, tokenizer) == []
    _, after = reference(MODEL, "abcdef", max_new_tokens=40, forced={1: forced})
    status = f"已走 {len(after.steps)} 步；{STOPS_ZH[after.stop[0]]}；第 2 步强制为 `` a ``"
    assert status in [plain(c.value) for c in at.caption]
    p = after.steps[1].probs()[0, forced].item()
    assert any(m.value.startswith(f"**第 2 步**被强制为 `` a ``，模型给它的概率是 {p:.1%}。所选分布的熵：") for m in at.markdown)
    assert any(m.value.startswith("**目前的输出** “") for m in at.markdown)
    assert at.button(key="dec_force").label == "在第 2 步强制使用它"
    assert chart(at, "dec_bars").layout.title.text == f"第 2 步：“{tokenizer.id_to_token(after.ids()[0])}” 之后的下一个词元"
    cross = chart(at, "dec_cross").layout
    assert (cross.xaxis.title.text, cross.yaxis.title.text) == ("源序列", "该步读入")
    assert cross.title.text.endswith("，第 0 层第 0 个头")
    at.toggle(key="dec_all_heads").set_value(True).run()
    assert not at.exception and english_on_main(at, tokenizer) == []
    assert [e.label for e in at.expander] == ["每一步的表格", "贪心搜索、束搜索和采样并排比较"]


def test_sampling_in_chinese_with_new_settings_from_the_next_step(trained, chinese):
    at = open_page(model=MODEL, text="abcdef", method="sample", lang="zh")
    at.button(key="dec_next").click().run()
    at.slider(key="dec_temperature").set_value(1.5).run()
    assert not at.exception
    hot = dict(temperature=1.5, top_k=None, top_p=None, seed=0)
    tokenizer = checkpoint.load_checkpoint(MODEL).tokenizer
    assert english_on_main(at, tokenizer, describe_sampling(hot)) == []
    notes = "；".join(stretch_notes(at.session_state["dec_plan"]))
    assert [line.strip() for line in plain(at.caption[1].value).split("\n")] == [
        f"采样设置：{notes}。", f"新设置（{describe_sampling(hot)}）从第 3 步起生效：已走的步骤保留原来的设置。用这些设置重放，可以用它们"
                           "把每一步重新采样。"]
    assert at.button(key="dec_replay").label == "用这些设置重放"
    at.button(key="dec_next").click().run()
    assert not at.exception and english_on_main(at, tokenizer) == []
    drawn_from = describe_sampling({name: value for name, value in hot.items() if name != "seed"})
    assert [trace.name for trace in chart(at, "dec_bars").data] == ["模型（温度 1）", f"抽样分布（{drawn_from}）"]


def test_beam_search_in_chinese(trained, chinese):
    at = open_page(model=MODEL, text="abcdef", method="beam", lang="zh")
    at.button(key="dec_run").click().run()
    assert not at.exception
    assert english_on_main(at, checkpoint.load_checkpoint(MODEL).tokenizer) == []
    assert "束搜索" in [header.value for header in at.subheader]
    assert any(c.value == "束搜索对完整的输出排序，所以改变束宽或长度惩罚会把已走的步骤重新搜索一遍。" for c in at.caption)
    assert (at.slider(key="dec_width").label, at.slider(key="dec_length_penalty").label) == ("束宽", "长度惩罚")
    assert chart(at, "dec_tree").layout.title.text == "每一步考察过的所有候选（把鼠标移到灰色的上面查看）"


def test_a_language_model_and_an_rnn_without_attention_in_chinese(page_models, chinese):
    at = open_page(model="test-lm", text="the cat", method="sample", lang="zh")
    at.number_input(key="dec_max_new").set_value(6).run()
    at.button(key="dec_run").click().run()
    assert not at.exception
    tokenizer, sampled = reference("test-lm", "the cat", "sample", max_new_tokens=6, seed=0)
    assert english_on_main(at, tokenizer, tokenizer.decode(sampled.ids()).replace(chr(10), " ⏎ ")) == []
    assert at.text_input(key="input_box").label == "提示（可以为空）"
    assert at.number_input(key="dec_seed").label == "随机种子"
    at = open_page(model="test-lstm", text="abcd", lang="zh")
    assert not at.exception
    assert english_on_main(at, checkpoint.load_checkpoint("test-lstm").tokenizer) == []
    assert [shown(info) for info in at.info] == ["test-lstm 没有可显示的注意力：它的解码器只通过一个状态读取源序列。"]


def test_bad_link_values_in_chinese(trained, chinese):
    at = open_page(model=MODEL, text="abcdef", method="sample", temperature="9", step="0", lang="zh")
    assert not at.exception
    assert english_on_main(at, checkpoint.load_checkpoint(MODEL).tokenizer) == []
    notes = [plain(w.value) for w in at.warning]
    assert any(n.startswith("链接中的 temperature='9'") and n.endswith("：改用 1.0。") for n in notes)
    assert any(n.startswith("链接中的 step='0'") and n.endswith("：改为显示最新一步。") for n in notes)
