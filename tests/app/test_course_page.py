"""The Course page through AppTest: every lesson renders (in English and in Chinese) and is reached by its URL, each
lesson's "open the full page" link opens that page at the state the lesson names (as a fresh link and in the learner's
own session), and the numbers of the live figures agree with independent computations (torch.nn.MultiheadAttention
and the LSTM equations on the shipped models' weights, the sinusoidal formula, a search over the connections of an
RNN, a CNN and self-attention, sentence-transformers)."""
import html
import inspect
import re
from types import SimpleNamespace
from urllib.parse import parse_qs

import numpy as np
import pytest
import torch
import torch.nn as nn
from page_helpers import array, charts, english_left, open_page, z_of

from attnviz.app.course import LESSONS
from attnviz.data.tokenizers import BOS
from attnviz.interpret.input_run import run_input
from attnviz.training.checkpoint import load_checkpoint
from attnviz.training.checkpoint_folder import SHIPPED_DIR

COURSE = "pages/course.py"
CJK = re.compile(r"[\u3400-\u9fff]")
BY_SLUG = {lesson.slug: lesson for lesson in LESSONS}
# The query parameters a link may carry, and the widget that shows each on the page it opens: (kind, key).
WIDGETS = {"model": ("selectbox", "model"), "text": ("text_input", "input_box"), "attention": ("radio", "attention"),
           "layer": ("selectbox", "layer"), "head": ("selectbox", "head"), "method": ("radio", "method"),
           "rnn_task": ("radio", "rnn_task"), "rnn_source": ("radio", "rnn_source")}


def open_lesson(slug, **inputs):
    """The course at one lesson, its inputs set to `inputs` (then run again)."""
    at = open_page(COURSE, lesson=slug)
    assert not at.exception
    if inputs:
        for key, value in inputs.items():
            widget = next(w for w in at.main if getattr(w, "key", None) == f"lesson_{slug}_{key}")
            widget.set_value(value)
        at.run()
        assert not at.exception
    return at


def links(at):
    """[(page file, {param: value})] of the lesson's links to other pages (the menu's links are in the sidebar)."""
    found = []
    for link in at.main.get("page_link"):
        params = {key: values[0] for key, values in parse_qs(link.proto.query_string).items()}
        found.append(("app.py" if not link.proto.page else f"pages/{link.proto.page}.py", params))
    return found


def shown_state(at, params):
    """{param: the value the page's widget for it shows}, for the params the page has a widget for."""
    return {param: str(getattr(at, WIDGETS[param][0])(key=WIDGETS[param][1]).value) for param in params}


def figure(at):
    return charts(at)["lesson_figure"]


def lesson_caption(at):
    return at.main.caption[-1].value


# ---------------------------------------------------------------------------------------------
# Every lesson, its URL, its link


@pytest.mark.parametrize("slug", list(BY_SLUG))
def test_every_lesson_renders_with_its_figure_and_answer_on_demand(slug):
    lesson = BY_SLUG[slug]
    at = open_lesson(slug)
    assert at.header[0].value.endswith(lesson.title)
    assert not at.warning and "lesson_figure" in charts(at)
    assert len(lesson.text.split()) <= 150
    assert lesson.answer not in [s.value for s in at.success]
    at.toggle(key=f"lesson_{slug}_answer").set_value(True).run()
    assert [s.value for s in at.success] == [lesson.answer]
    assert links(at), "every lesson opens a full page"


def chinese_length(text):
    """How long a Chinese text reads: its CJK characters, plus one for each word of another script (LSTM, 64,
    all-MiniLM-L6-v2); formulas left out. About two per English word, so 150 English words read like 300."""
    prose = re.sub(r"\$[^$]*\$", " ", text)
    return len(CJK.findall(prose)) + len(re.findall(r"[A-Za-z0-9][\w.,·-]*", CJK.sub(" ", prose)))


def lesson_elements(at):
    """A page run with only the lesson's own elements: the main area without the live figure and its caption (the
    figures translate their own words) and without the sidebar (the menu's), as `english_left` reads a page."""
    figure_caption = at.main.caption[-1]
    own = [node for node in at.main if getattr(node, "type", "") != "plotly_chart" and node is not figure_caption]
    return SimpleNamespace(main=own, sidebar=[])


# Words of the ui package's course helpers, not of the lessons: the answer's toggle, and the title of the page a link opens
# (`show_lesson` adds it to the link's label as ui.PAGES has it). The UI's own translation covers them.
UI_WORDS = ("Show the answer", "RNN vs attention")


@pytest.mark.parametrize("slug", list(BY_SLUG))
def test_every_lesson_reads_in_chinese(slug):
    """With ?lang=zh a lesson shows its title, text, inputs, "try this", answer and links in Chinese: no English
    phrase is left but the learner's inputs (English letters and sentences the models read), at a length like the
    English one's."""
    lesson = BY_SLUG[slug]
    at = open_page(COURSE, lang="zh", lesson=slug)
    assert not at.exception and not at.warning
    title = at.header[0].value
    assert CJK.search(title) and lesson.title not in title
    text = at.main.markdown[0].value
    assert CJK.search(text) and chinese_length(text) <= 300
    at.toggle(key=f"lesson_{slug}_answer").set_value(True).run()
    answer = at.success[0].value
    assert CJK.search(answer) and answer != lesson.answer
    inputs = tuple(str(lesson_input.default) for lesson_input in lesson.inputs)
    assert english_left(lesson_elements(at), allowed=UI_WORDS + inputs) == []


def test_a_lesson_number_in_the_url_opens_that_lesson_and_becomes_its_slug():
    at = open_page(COURSE, lesson="3")
    assert at.header[0].value == f"3. {LESSONS[2].title}"
    assert at.query_params["lesson"] == LESSONS[2].slug


def test_next_and_previous_walk_the_lessons_in_order_and_the_url_follows():
    at = open_lesson(LESSONS[0].slug)
    assert not any(b.key == "lesson_back" for b in at.button)
    for number, lesson in enumerate(LESSONS[1:], start=2):
        at.button(key="lesson_next").click().run()
        assert at.header[0].value == f"{number}. {lesson.title}" and at.query_params["lesson"] == lesson.slug
    assert not any(b.key == "lesson_next" for b in at.button)
    at.button(key="lesson_back").click().run()
    assert at.query_params["lesson"] == LESSONS[-2].slug


@pytest.mark.parametrize("slug", list(BY_SLUG))
def test_the_link_opens_the_full_page_at_the_lessons_state(slug):
    page, params = links(open_lesson(slug))[0]
    at = open_page(page, timeout=180, **params)  # the decoding page builds the prose corpus first
    assert not at.exception
    assert shown_state(at, [p for p in params if p in WIDGETS]) == {p: params[p] for p in params if p in WIDGETS}


def test_the_link_follows_the_learners_input():
    at = open_lesson("encoder-decoder", text="transformer", attention="decoder self", head=2)
    page, params = links(at)[0]
    assert (page, params) == ("pages/explorer.py", {"model": "reverse-transformer", "text": "transformer",
                                                    "attention": "decoder self", "layer": "0", "head": "2"})


def test_in_the_learners_own_session_the_link_wins_over_earlier_choices_and_the_lesson_is_kept():
    """A learner who looked at another model and input first: following the lesson's link (the same session, as a
    click does) still shows the lesson's model, input, attention kind, layer and head."""
    at = open_page("pages/explorer.py", model="dates-transformer", text="1 May 1999", attention="encoder self")
    at.query_params = {"lesson": "query-key-value"}
    at.switch_page(COURSE).run()
    at.selectbox(key="lesson_query-key-value_head").set_value(3).run()
    page, params = links(at)[0]
    assert params["head"] == "3"
    at.query_params = dict(params)
    at.switch_page(page).run()
    assert not at.exception
    assert shown_state(at, params) == params
    at.query_params = {"model": "reverse-transformer"}  # the menu's link back: the course keeps its lesson
    at.switch_page(COURSE).run()
    assert at.header[0].value.endswith(BY_SLUG["query-key-value"].title)
    assert at.selectbox(key="lesson_query-key-value_head").value == 3  # the lesson as the learner left it


# ---------------------------------------------------------------------------------------------
# The figures' numbers against independent computations


def module_inputs(model, module, forward):
    """(the attention module, the arguments it was called with in one forward pass)."""
    attention, seen = dict(model.named_modules())[module], {}
    record = lambda m, args, kwargs: seen.update(inspect.signature(m.forward).bind(*args, **kwargs).arguments)
    handle = attention.register_forward_pre_hook(record, with_kwargs=True)
    try:
        with torch.no_grad():
            forward()
    finally:
        handle.remove()
    return attention, seen


def torch_weights(model, module, forward, causal=False):
    """(H, Tq, Tk) attention weights of torch.nn.MultiheadAttention holding the module's weights, on its inputs."""
    attention, seen = module_inputs(model, module, forward)
    D = attention.q_proj.weight.shape[0]
    reference = nn.MultiheadAttention(D, attention.n_heads, batch_first=True).eval()
    projections = (attention.q_proj, attention.k_proj, attention.v_proj)
    with torch.no_grad():
        reference.in_proj_weight.copy_(torch.cat([p.weight for p in projections]))
        reference.in_proj_bias.copy_(torch.cat([p.bias for p in projections]))
        query, key = seen["query"], seen["key"]
        mask = torch.ones(query.shape[1], key.shape[1], dtype=torch.bool).triu(1) if causal else None
        _, weights = reference(query, key, seen["value"], attn_mask=mask, need_weights=True,
                               average_attn_weights=False)
    return weights[0].numpy()


def transformer_reference(model_name, text, module, causal=False, max_tokens=12):
    picked = load_checkpoint(SHIPPED_DIR / model_name)
    run = run_input(picked.model, picked.task(), text, max_tokens)
    return torch_weights(picked.model, module, lambda: run.forward(picked.model), causal)


def test_query_key_value_weights_equal_torch_multihead_attention():
    at = open_lesson("query-key-value", text="transformer", head=3)
    expected = transformer_reference("reverse-transformer", "transformer", "encoder.layers.0.self_attn")[3]
    assert expected.shape == (12, 12)  # 11 letters + EOS
    assert np.allclose(z_of(figure(at)), expected, atol=1e-5)


def test_multi_head_shows_every_cross_attention_head_as_torch_computes_it():
    at = open_lesson("multi-head")
    expected = transformer_reference("dates-transformer", "23 Nov 2026", "decoder.layers.0.cross_attn", max_tokens=24)
    grid = figure(at)
    assert len(grid["data"]) == 4
    for head in range(4):
        assert np.allclose(z_of(grid, head), expected[head], atol=1e-5)


@pytest.mark.parametrize("kind, module", [("encoder self", "encoder.layers.0.self_attn"),
                                          ("decoder self", "decoder.layers.0.self_attn"),
                                          ("cross", "decoder.layers.0.cross_attn")])
def test_each_kind_of_attention_equals_torch_and_only_the_future_is_masked(kind, module):
    at = open_lesson("encoder-decoder", attention=kind, head=1)
    expected = transformer_reference("reverse-transformer", "attention", module, causal=kind == "decoder self")[1]
    shown = z_of(figure(at))
    assert shown.shape == expected.shape
    future = np.triu(np.ones(shown.shape, dtype=bool), 1)
    assert (np.isnan(shown) == (future if kind == "decoder self" else np.zeros_like(future))).all()
    assert np.allclose(shown[~np.isnan(shown)], expected[~np.isnan(shown)], atol=1e-5)


def lstm_by_hand(lstm, x):
    """(S, H) top-layer hidden states of an nn.LSTM over x (S, E), from the LSTM equations and its own weights:
    i, f, g, o = σ, σ, tanh, σ of W_ih x_t + b_ih + W_hh h_{t-1} + b_hh;
    c_t = f c_{t-1} + i g;  h_t = o tanh(c_t)."""
    for layer in range(lstm.num_layers):
        W_ih, W_hh = getattr(lstm, f"weight_ih_l{layer}"), getattr(lstm, f"weight_hh_l{layer}")
        b = getattr(lstm, f"bias_ih_l{layer}") + getattr(lstm, f"bias_hh_l{layer}")
        h = c = torch.zeros(lstm.hidden_size)
        states = []
        for x_t in x:
            i, f, g, o = (W_ih @ x_t + W_hh @ h + b).chunk(4)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            states.append(h)
        x = torch.stack(states)
    return x


def test_hidden_states_follow_the_lstm_equations_and_only_the_new_steps_change():
    picked = load_checkpoint(SHIPPED_DIR / "reverse-lstm")
    shown = {text: z_of(figure(open_lesson("sequences", text=text))) for text in ("abcdefgh", "abcdefghz")}
    ids = picked.task().encode_source("abcdefghz")[0]  # (S,) letters + EOS
    with torch.no_grad():
        expected = lstm_by_hand(picked.model.encoder.rnn, picked.model.encoder.embed(ids)).numpy()
    assert np.allclose(shown["abcdefghz"], expected, atol=1e-5)
    assert np.array_equal(shown["abcdefgh"][:8], shown["abcdefghz"][:8])  # what the answer says
    assert not np.allclose(shown["abcdefgh"][8], shown["abcdefghz"][9])  # <eos> after h vs after z


def test_positional_table_is_the_sinusoidal_formula():
    shown = z_of(figure(open_lesson("positional-encoding", d_model=16, positions=40)))
    pos, i = np.arange(40)[:, None], np.arange(8)[None, :]
    angle = pos / 10000 ** (2 * i / 16)
    expected = np.empty((40, 16))
    expected[:, 0::2], expected[:, 1::2] = np.sin(angle), np.cos(angle)
    assert np.allclose(shown, expected, atol=1e-6)


def test_next_token_bars_are_the_softmax_at_each_temperature():
    at = open_lesson("seq2seq-and-language-models", text="The module", temperature=0.5)
    picked = load_checkpoint(SHIPPED_DIR / "prose-lm")
    with torch.no_grad():
        logits = picked.model.logits(None, torch.tensor([[BOS, *picked.tokenizer.encode("The module")]]))[0, -1]
    top = torch.softmax(logits, -1).topk(10)
    bars = figure(at)["data"]
    assert np.allclose(array(bars[0]["y"]), top.values.numpy(), atol=1e-6)
    assert np.allclose(array(bars[1]["y"]), torch.softmax(logits / 0.5, -1)[top.indices].numpy(), atol=1e-6)
    assert list(bars[0]["customdata"]) == [html.escape(label, quote=False) for label in
                                           picked.tokenizer.labels(top.indices)]


def shortest_path(n, step):
    """Breadth-first search from position 0 to position n - 1 over layers: `step(i)` lists the positions one layer
    (or step) up that position i feeds. The number of layers crossed."""
    reached, layers = {0}, 0
    while n - 1 not in reached:
        reached, layers = {j for i in reached for j in step(i) if j < n}, layers + 1
    return layers


@pytest.mark.parametrize("n, kernel", [(2, 2), (64, 3), (1000, 5), (4096, 15)])
def test_longest_paths_are_those_of_the_connections(n, kernel):
    curves = {trace["name"]: (array(trace["x"]), array(trace["y"]))
              for trace in figure(open_lesson("self-attention-vs-rnn-vs-cnn", length=n, kernel=kernel))["data"]}
    connections = {"RNN": lambda i: [i + 1],  # h_i feeds h_{i+1} only
                   f"CNN, kernel {kernel}": lambda i: range(i, i + kernel),  # a causal convolution's window
                   "Self-attention": lambda i: range(n)}  # every position feeds every position
    assert set(curves) == set(connections)
    for name, step in connections.items():
        lengths, paths = curves[name]
        assert lengths[-1] == n
        for m, path in zip(lengths[::7], paths[::7]):
            assert path == shortest_path(int(m), step), (name, m)


def test_sentence_similarity_equals_sentence_transformers():
    from sentence_transformers import SentenceTransformer

    from attnviz.models import pretrained
    sentences = ["The cat sat on the mat.", "A cat was sitting on the rug.", "It will rain tomorrow."]
    at = open_lesson("pretrained-downstream", sentences="\n".join(sentences))
    embeddings = SentenceTransformer(str(pretrained.model_path()), device="cpu").encode(sentences,
                                                                                       convert_to_tensor=True)
    assert np.allclose(z_of(figure(at)), (embeddings @ embeddings.T).numpy(), atol=1e-4)
    assert "1 and 2" in lesson_caption(at)  # the paraphrase is the closest pair, as the answer says


def test_the_shipped_lab_model_has_formed_induction_heads():
    """Layer 1 of induction-lm, on 16 random letters said twice: the weights equal torch's, and the induction score
    of the caption, recomputed by hand from them (weight from position 16 + j on position j + 1), is above 0.8 for
    some head, far above the 0.04 of a head that spreads its weight evenly."""
    at = open_lesson("induction-heads", layer=1, head=2)
    picked = load_checkpoint(SHIPPED_DIR / "induction-lm")
    page, params = links(at)[0]
    tokens = torch.tensor([[BOS, *picked.tokenizer.encode(params["text"])]])  # (1, 33)
    expected = torch_weights(picked.model, "decoder.layers.1.self_attn", lambda: picked.model.logits(None, tokens),
                             causal=True)  # (H, 33, 33)
    shown = z_of(figure(at))
    assert np.allclose(shown[~np.isnan(shown)], expected[2][~np.isnan(shown)], atol=1e-5)
    half = 16
    scores = [np.mean([expected[h, half + j, j + 1] for j in range(1, half)]) for h in range(4)]
    caption = lesson_caption(at)
    assert [float(s) for s in re.findall(r"head \d (\d\.\d\d)", caption)] == pytest.approx(scores, abs=0.006)
    assert max(scores) > 0.8
    chance = float(re.search(r"evenly scores (\d\.\d\d)", caption).group(1))
    assert chance == pytest.approx(np.mean([1 / (half + j + 1) for j in range(1, half)]), abs=0.006)


def test_the_variance_of_q_dot_k_is_d_k_and_the_scaled_one_is_one():
    """Var(q·k) = d_k for q, k with independent N(0, 1) entries (a sum of d_k products of variance 1)."""
    curves = {trace["name"]: (array(trace["x"]), array(trace["y"]))
              for trace in figure(open_lesson("scaled-dot-product", statistic="variance"))["data"]}
    d_k, raw = curves["q·k"]
    _, scaled = curves["q·k / √d_k"]
    assert list(d_k) == [2 ** i for i in range(10)]
    assert np.allclose(raw, d_k, rtol=0.15) and np.allclose(scaled, 1.0, atol=0.15)
