"""RNN encoder-decoder: the Transformer's interface tests, and each decoder against its paper's equations.

The references at the end of the file are written from the papers (and PyTorch's documented cell equations) on
plain vectors, one position at a time, with the model's weights copied into a dict: they share no module with
the model, so a wrong recurrence, score, context path or output layer in the model fails them.
"""
import itertools
import json
import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from attnviz import ablate, build_model, capture, pattern_names
from attnviz.data.tokenizers import CharTokenizer
from attnviz.models.architectures import ARCHITECTURES, model_config
from attnviz.models.config import RNNConfig
from attnviz.models.rnn import AdditiveScore, Attention, DotScore, GeneralScore, RNNSeq2Seq
from attnviz.training.checkpoint import load_checkpoint, save_checkpoint
from attnviz.training.checkpoint_folder import CheckpointError

PAD, BOS, EOS = 0, 1, 2
V = 12
ATTENTIONS = ["none", "bahdanau", "luong-dot", "luong-general", "luong-concat", "luong-general-unfed"]
WITH_ATTENTION = ATTENTIONS[1:]
KINDS = list(itertools.product(["rnn", "gru", "lstm"], ATTENTIONS))


def settings_of(attention):
    """RNNConfig fields for a name of ATTENTIONS ("luong-general-unfed": Luong's general score, no input feeding)."""
    if attention == "luong-general-unfed":
        return {"attention": "luong-general", "input_feeding": False}
    return {"attention": attention}


def make_model(cell="lstm", attention="bahdanau", seed=0, **overrides):
    torch.manual_seed(seed)
    settings = dict(cell=cell, **settings_of(attention), embed_dim=8, hidden_size=16, n_layers=2, bidirectional=True)
    return RNNSeq2Seq(RNNConfig(V, V, **{**settings, **overrides})).eval()


def padded_batch(seed=0):
    """(3, 7) sources right-padded to lengths 7, 4, 2 and (3, 5) target inputs."""
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(3, V, (3, 7), generator=g)
    src[1, 4:] = PAD
    src[2, 2:] = PAD
    return src, torch.randint(3, V, (3, 5), generator=g)


def decode_loop(model, src, tgt_in):
    state, steps = model.encode(src), []
    for t in range(tgt_in.shape[1]):
        logits, state = model.decode_step(state, tgt_in[:, t])
        steps.append(logits)
    return torch.stack(steps, dim=1), state  # (B, T, V)


# --- config and construction ---------------------------------------------------------------------------------

@pytest.mark.parametrize("field, value", [("cell", "transformer"), ("attention", "dot"), ("attention", "luong"),
                                          ("hidden_size", 0), ("n_layers", 1.5), ("dropout", 1.0),
                                          ("bidirectional", "yes"), ("input_feeding", "yes"), ("pad_id", V),
                                          ("max_len", -1)])
def test_config_rejects_impossible_values(field, value):
    with pytest.raises(ValueError, match=field):
        RNNConfig(V, V, **{field: value})


@pytest.mark.parametrize("attention", ["none", "bahdanau"])
def test_input_feeding_belongs_to_luong_only(attention):
    with pytest.raises(ValueError, match="input_feeding=True.*Luong"):
        RNNConfig(V, V, attention=attention, input_feeding=True)
    assert RNNConfig(V, V, attention=attention).input_feeding is False


def test_input_feeding_is_on_by_default_for_luong_as_in_the_paper():
    config = RNNConfig(V, V, attention="luong-dot")
    assert config.input_feeding is True and config == RNNConfig(V, V, attention="luong-dot", input_feeding=True)
    assert RNNConfig(V, V, attention="luong-dot", input_feeding=False).input_feeding is False


def test_config_bidirectional_needs_even_hidden_size():
    with pytest.raises(ValueError, match="hidden_size=15.*even"):
        RNNConfig(V, V, hidden_size=15, bidirectional=True)
    RNNConfig(V, V, hidden_size=15, bidirectional=False)


def test_build_model_dispatches_on_config_type():
    config = RNNConfig(V, V, hidden_size=16)
    model = build_model(config)
    assert isinstance(model, RNNSeq2Seq) and model.config is config and model.has_encoder
    assert RNNConfig.from_dict(dict(src_vocab_size=V, tgt_vocab_size=V, cell="gru")).cell == "gru"


@pytest.mark.parametrize("architecture, cell, attention, input_feeding", [
    ("lstm", "lstm", "none", False), ("lstm+bahdanau", "lstm", "bahdanau", False),
    ("lstm+luong", "lstm", "luong-general", True), ("lstm+luong-dot", "lstm", "luong-dot", True),
    ("lstm+luong-concat", "lstm", "luong-concat", True), ("gru+bahdanau", "gru", "bahdanau", False),
    ("gru+luong", "gru", "luong-general", True), ("rnn+bahdanau", "rnn", "bahdanau", False)])
def test_architecture_names_say_which_attention(architecture, cell, attention, input_feeding):
    config = model_config(architecture, CharTokenizer("abcdefgh"))
    assert (config.cell, config.attention, config.input_feeding) == (cell, attention, input_feeding)
    assert architecture in ARCHITECTURES


def test_luong_input_feeding_can_be_switched_off_by_a_size():
    config = model_config("lstm+luong", CharTokenizer("abc"), input_feeding=False)
    assert (config.attention, config.input_feeding) == ("luong-general", False)


@pytest.mark.parametrize("size", ["attention", "cell"])
def test_sizes_cannot_contradict_the_architecture_name(size):
    with pytest.raises(ValueError, match=f"{size} is set by the architecture .lstm.bahdanau."):
        model_config("lstm+bahdanau", CharTokenizer("abc"), **{size: "gru" if size == "cell" else "luong-dot"})


# --- the shared model interface ----------------------------------------------------------------------------------

@pytest.mark.parametrize("cell, attention", KINDS)
def test_decode_step_loop_equals_full_forward(cell, attention):
    model = make_model(cell, attention)
    src, tgt_in = padded_batch()
    with torch.no_grad():
        full = model(src, tgt_in)  # (B, T, V)
        stepped, state = decode_loop(model, src, tgt_in)
    assert full.shape == (3, 5, V) and state.position == 5
    torch.testing.assert_close(stepped, full, atol=1e-5, rtol=0)


@pytest.mark.parametrize("cell, attention", KINDS)
def test_capture_does_not_change_outputs_and_shows_the_pattern(cell, attention):
    model = make_model(cell, attention)
    src, tgt_in = padded_batch()
    with torch.no_grad():
        plain = model(src, tgt_in)
        with capture(model) as cache:
            captured = model(src, tgt_in)
    torch.testing.assert_close(captured, plain, atol=0, rtol=0)
    if attention == "none":
        assert pattern_names(model) == [] and cache == {}
    else:
        assert pattern_names(model) == ["decoder.attention.hook_pattern"]
        assert cache["decoder.attention.hook_pattern"].shape == (3, 1, 5, 7)  # (B, 1 head, Tq, Tk)


@pytest.mark.parametrize("cell, attention", [k for k in KINDS if k[1] != "none"])
def test_capture_while_decoding_step_by_step_gives_the_rows_of_the_full_forward(cell, attention):
    """One query row per decode_step; stacked, they are the pattern and contexts one forward pass captures."""
    model = make_model(cell, attention)
    src, tgt_in = padded_batch()
    names = ["decoder.attention.hook_pattern", "decoder.attention.hook_z"]
    with torch.no_grad():
        with capture(model, names) as full:
            model(src, tgt_in)
        state, rows = model.encode(src), []
        for t in range(tgt_in.shape[1]):
            with capture(model, names) as step:
                _, state = model.decode_step(state, tgt_in[:, t])
            rows.append(step)
    assert rows[0][names[0]].shape == (3, 1, 1, 7) and full[names[1]].shape == (3, 5, 1, 16)  # (B, Tq, 1 head, D)
    torch.testing.assert_close(torch.cat([r[names[0]] for r in rows], dim=2), full[names[0]], atol=1e-6, rtol=0)
    torch.testing.assert_close(torch.cat([r[names[1]] for r in rows], dim=1), full[names[1]], atol=1e-6, rtol=0)


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_decode_step_state_does_not_grow(attention):
    """No KV cache: after any number of steps the state holds the same tensors of the same shapes."""
    model = make_model("lstm", attention)
    src, tgt_in = padded_batch()
    with torch.no_grad():
        first = model.decode_step(model.encode(src), tgt_in[:, 0])[1]
        last = decode_loop(model, src, tgt_in)[1]

    def shapes(state):
        tensors = [state.memory, state.keys, state.memory_key_padding_mask, state.feed, *state.hidden]
        return [None if t is None else tuple(t.shape) for t in tensors]
    assert shapes(last) == shapes(first)
    assert (first.feed is None) == (attention in ("none", "bahdanau", "luong-general-unfed"))


@pytest.mark.parametrize("cell, attention", [k for k in KINDS if k[1] != "none"])
def test_attention_rows_sum_to_one_and_padding_gets_zero(cell, attention):
    model = make_model(cell, attention)
    src, tgt_in = padded_batch()
    with torch.no_grad(), capture(model) as cache:
        model(src, tgt_in)
    pattern = cache["decoder.attention.hook_pattern"]  # (B, 1, Tq, Tk)
    torch.testing.assert_close(pattern.sum(-1), torch.ones(3, 1, 5))
    padding = (src == PAD)[:, None, None, :].expand_as(pattern)
    assert (pattern[padding] == 0).all() and (pattern[~padding] > 0).all()


@pytest.mark.parametrize("cell, attention", KINDS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_source_padding_changes_nothing(cell, attention, bidirectional):
    model = make_model(cell, attention, bidirectional=bidirectional)
    src, tgt_in = padded_batch()
    with torch.no_grad():
        batched = model(src, tgt_in)
        for row, length in enumerate([7, 4, 2]):
            alone = model(src[row:row + 1, :length], tgt_in[row:row + 1])  # the same source without padding
            torch.testing.assert_close(batched[row:row + 1], alone, atol=1e-5, rtol=0)


@pytest.mark.parametrize("cell, attention", [k for k in KINDS if k[1] != "none"])
def test_an_all_padding_source_row_gets_zero_attention_and_changes_no_other_row(cell, attention):
    """As the Transformer's attention does: a query with no key to see attends to nothing (never NaN)."""
    model = make_model(cell, attention)
    src, tgt_in = padded_batch()
    empty = src.clone()
    empty[1] = PAD
    with torch.no_grad():
        with capture(model) as cache:
            logits = model(empty, tgt_in)
        torch.testing.assert_close(logits[[0, 2]], model(src, tgt_in)[[0, 2]], atol=1e-6, rtol=0)
    assert torch.isfinite(logits).all()
    assert (cache["decoder.attention.hook_pattern"][1] == 0).all()


@pytest.mark.parametrize("cell, attention", KINDS)
def test_select_reorders_rows(cell, attention):
    model = make_model(cell, attention)
    src, tgt_in = padded_batch()
    index = torch.tensor([2, 0, 0])
    with torch.no_grad():
        state = model.encode(src)
        _, state = model.decode_step(state, tgt_in[:, 0])
        picked = state.select(index)
        logits, _ = model.decode_step(state, tgt_in[:, 1])
        picked_logits, picked_state = model.decode_step(picked, tgt_in[index, 1])
    torch.testing.assert_close(picked_logits, logits[index], atol=1e-6, rtol=0)
    assert picked_state.position == 2


def test_old_state_stays_valid():
    model = make_model()
    src, tgt_in = padded_batch()
    with torch.no_grad():
        state = model.encode(src)
        first, _ = model.decode_step(state, tgt_in[:, 0])
        model.decode_step(model.decode_step(state, tgt_in[:, 1])[1], tgt_in[:, 2])
        again, _ = model.decode_step(state, tgt_in[:, 0])
    torch.testing.assert_close(again, first, atol=0, rtol=0)
    assert state.position == 0


@pytest.mark.parametrize("cell, attention", [("rnn", "luong-general"), ("gru", "luong-concat"), ("lstm", "bahdanau"),
                                             ("lstm", "luong-general-unfed")])
def test_checkpoint_round_trip(cell, attention, tmp_path):
    model = make_model(cell, attention)
    tokenizer = CharTokenizer("abcdefgh")  # 4 specials + 8 letters = V
    save_checkpoint(tmp_path / "rnn", model, tokenizer, {})
    loaded = load_checkpoint(tmp_path / "rnn")
    src, tgt_in = padded_batch()
    assert loaded.model.config == model.config and loaded.meta["architecture"] == "rnn"
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(src, tgt_in), model(src, tgt_in), atol=0, rtol=0)


# --- scores by hand ---------------------------------------------------------------------------------------------

def test_additive_score_matches_hand_computation():
    attention = Attention(AdditiveScore(query_size=2, key_size=2, size=2))
    with torch.no_grad():
        attention.score.q_proj.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))  # W
        attention.score.k_proj.weight.copy_(torch.tensor([[0.5, 0.0], [0.0, -1.0]]))  # U
        attention.score.v.weight.copy_(torch.tensor([[1.0, 2.0]]))  # v
    s = torch.tensor([[[0.2, -0.4]]])  # (B=1, Tq=1, 2)
    memory = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [3.0, 3.0]]])  # (1, Tk=3, 2); the last key is padding
    # v^T tanh(W s + U h): W s = (0.2, -0.4); U h1 = (0.5, 0), U h2 = (0, -1)
    scores = [1 * math.tanh(0.2 + 0.5) + 2 * math.tanh(-0.4 + 0.0), 1 * math.tanh(0.2 + 0.0) + 2 * math.tanh(-0.4 - 1.0)]
    a1 = math.exp(scores[0]) / (math.exp(scores[0]) + math.exp(scores[1]))
    with torch.no_grad(), capture(torch.nn.ModuleDict({"attention": attention})) as cache:
        context, _ = attention(s, attention.score.project_keys(memory), memory, torch.tensor([[False, False, True]]))
    torch.testing.assert_close(cache["attention.hook_pattern"], torch.tensor([[[[a1, 1 - a1, 0.0]]]]))
    torch.testing.assert_close(context, torch.tensor([[[a1, 1 - a1]]]))  # a1 h1 + a2 h2


def test_general_and_dot_scores_match_hand_computation():
    general = GeneralScore(query_size=2, key_size=2)
    with torch.no_grad():
        general.k_proj.weight.copy_(torch.tensor([[1.0, 2.0], [0.0, -1.0]]))  # W_a
    s, h = torch.tensor([[[0.5, 1.0]]]), torch.tensor([[[2.0, 1.0]]])  # (1, 1, 2) each
    # s^T W_a h = (0.5, 1.0) . (W_a h) = (0.5, 1.0) . (4, -1) = 1.0;  s^T h = 1.0 + 1.0 = 2.0
    assert general(s, general.project_keys(h)).item() == pytest.approx(1.0)
    assert DotScore()(s, DotScore().project_keys(h)).item() == pytest.approx(2.0)


# --- each decoder against its paper's equations, written out on vectors ------------------------------------------

def cell_step(cell, w, x, state):
    """One step of one layer from PyTorch's documented cell equations (its gate order); state is (h, c), and c
    changes only in the LSTM."""
    h, c = state
    gx, gh = w["ih"] @ x + w["b_ih"], w["hh"] @ h + w["b_hh"]
    if cell == "rnn":
        return torch.tanh(gx + gh), c
    if cell == "gru":
        (rx, zx, nx), (rh, zh, nh) = gx.chunk(3), gh.chunk(3)
        r, z = torch.sigmoid(rx + rh), torch.sigmoid(zx + zh)
        n = torch.tanh(nx + r * nh)
        return (1 - z) * n + z * h, c
    i, f, g, o = (gx + gh).chunk(4)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def layer_weights(p, rnn, layer, direction=""):
    key = f"l{layer}{direction}"
    return {"ih": p[f"{rnn}.weight_ih_{key}"], "hh": p[f"{rnn}.weight_hh_{key}"],
            "b_ih": p[f"{rnn}.bias_ih_{key}"], "b_hh": p[f"{rnn}.bias_hh_{key}"]}


def reference_encoder(config, p, src):
    """The encoder states h_j of one unpadded source (a list of ids) and the final (h, c) of every layer, both
    directions joined (forward, backward) when it is bidirectional."""
    xs, finals = [p["encoder.embed.weight"][token] for token in src], []
    for layer in range(config.n_layers):
        states, ends = [], []
        for direction in (["", "_reverse"] if config.bidirectional else [""]):
            w = layer_weights(p, "encoder.rnn", layer, direction)
            state = (w["hh"].new_zeros(w["hh"].shape[1]), w["hh"].new_zeros(w["hh"].shape[1]))
            hs = [None] * len(xs)
            for j in (range(len(xs)) if direction == "" else reversed(range(len(xs)))):
                state = cell_step(config.cell, w, xs[j], state)
                hs[j] = state[0]
            states.append(hs)
            ends.append(state)
        xs = [torch.cat([hs[j] for hs in states]) for j in range(len(xs))]
        finals.append((torch.cat([end[0] for end in ends]), torch.cat([end[1] for end in ends])))
    return xs, finals


def decoder_step(config, p, x, states):
    """One decoder step through every layer: the new (h, c) of each; the top layer's h is s_i."""
    new = []
    for layer, state in enumerate(states):
        new.append(cell_step(config.cell, layer_weights(p, "decoder.rnn", layer), x, state))
        x = new[-1][0]
    return new


def score(kind, p, s, h):
    """One score e(s, h) as the papers write it."""
    if kind == "luong-dot":
        return s @ h  # s_i^T h_j
    if kind == "luong-general":
        return s @ p["decoder.attention.score.k_proj.weight"] @ h  # s_i^T W_a h_j
    W, U = p["decoder.attention.score.q_proj.weight"], p["decoder.attention.score.k_proj.weight"]
    v = p["decoder.attention.score.v.weight"][0]
    if kind == "luong-concat":
        return v @ torch.tanh(torch.cat([W, U], dim=1) @ torch.cat([s, h]))  # v_a^T tanh(W_a [s_i; h_j])
    return v @ torch.tanh(W @ s + U @ h)  # Bahdanau: v^T tanh(W s_{i-1} + U h_j)


def attend(kind, p, query, hs, zero_context):
    """a_j = exp(e_j) / sum_k exp(e_k), c = sum_j a_j h_j (c = 0 when the head is ablated)."""
    e = torch.stack([score(kind, p, query, h) for h in hs])
    a = torch.exp(e) / torch.exp(e).sum()
    c = sum(a_j * h_j for a_j, h_j in zip(a, hs))
    return a, torch.zeros_like(c) if zero_context else c


def reference(model, src, tgt_in, zero_context=False):
    """Logits (T, V) and attention weights (T, S) (None without attention) of one unpadded example (lists of ids),
    from the equations of the paper that `model.config.attention` names, with the model's weights copied."""
    config = model.config
    p = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
    hs, states = reference_encoder(config, p, src)  # s_0 = the encoder's final state
    E = p["decoder.embed.weight"]
    h_tilde = E.new_zeros(config.hidden_size)  # Luong's h~_0
    logits, weights = [], []
    for y in tgt_in:
        if config.attention == "none":  # Sutskever et al.: s_i = RNN(embed(y_{i-1}), s_{i-1}), logits from s_i
            states = decoder_step(config, p, E[y], states)
            out, a = states[-1][0], None
        elif config.attention == "bahdanau":  # Bahdanau et al.: c_i from s_{i-1}, s_i = f(s_{i-1}, y_{i-1}, c_i)
            a, c = attend("bahdanau", p, states[-1][0], hs, zero_context)
            states = decoder_step(config, p, torch.cat([E[y], c]), states)
            s = states[-1][0]
            out = torch.tanh(p["decoder.deep_output.weight"] @ torch.cat([s, c, E[y]]) + p["decoder.deep_output.bias"])
        else:  # Luong et al.: s_i first (input feeding: [embed(y_{i-1}); h~_{i-1}]), then c_i from s_i
            x = torch.cat([E[y], h_tilde]) if config.input_feeding else E[y]
            states = decoder_step(config, p, x, states)
            s = states[-1][0]
            a, c = attend(config.attention, p, s, hs, zero_context)
            h_tilde = torch.tanh(p["decoder.combine.weight"] @ torch.cat([c, s]) + p["decoder.combine.bias"])
            out = h_tilde
        logits.append(p["lm_head.weight"] @ out + p["lm_head.bias"])
        weights.append(a)
    return torch.stack(logits), None if config.attention == "none" else torch.stack(weights)


def check_against_reference(model, src, tgt_in, lengths):
    with torch.no_grad(), capture(model) as cache:
        logits = model(src, tgt_in)  # (B, T, V)
    for row, length in enumerate(lengths):
        expected, weights = reference(model, src[row, :length].tolist(), tgt_in[row].tolist())
        torch.testing.assert_close(logits[row], expected, atol=1e-6, rtol=0)
        if weights is not None:
            pattern = cache["decoder.attention.hook_pattern"][row, 0]  # (T, S)
            torch.testing.assert_close(pattern[:, :length], weights, atol=1e-6, rtol=0)


@pytest.mark.parametrize("cell, attention", KINDS)
def test_forward_matches_the_papers_equations(cell, attention):
    model = make_model(cell, attention, n_layers=1, bidirectional=False).double()
    src, tgt_in = padded_batch()
    check_against_reference(model, src[:1], tgt_in[:1], [7])


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_two_layer_bidirectional_padded_batch_matches_the_papers_equations(attention):
    """Bahdanau et al. read the source with a bidirectional RNN; every row against the equations on its real tokens."""
    model = make_model("lstm", attention, n_layers=2, bidirectional=True).double()
    src, tgt_in = padded_batch()
    check_against_reference(model, src, tgt_in, [7, 4, 2])


def test_without_attention_the_decoder_state_holds_nothing_of_the_source_but_its_start():
    state = make_model("lstm", "none").encode(padded_batch()[0])
    assert state.memory is None and state.keys is None and state.feed is None


def test_bidirectional_final_state_joins_both_directions():
    model = make_model("gru", "bahdanau", n_layers=1, bidirectional=True)
    src, _ = padded_batch()
    half = model.config.hidden_size // 2
    with torch.no_grad():
        state = model.encode(src)
    for row, length in enumerate([7, 4, 2]):
        forward_last = state.memory[row, length - 1, :half]  # forward direction after the last real token
        backward_first = state.memory[row, 0, half:]  # backward direction after reading back to the first
        torch.testing.assert_close(state.hidden[0, row], torch.cat([forward_last, backward_first]))


@pytest.mark.parametrize("cell, attention", [k for k in KINDS if k[1] != "none"])
def test_ablating_the_one_head_is_the_equations_with_a_zero_context(cell, attention):
    model = make_model(cell, attention, n_layers=1).double()
    src, tgt_in = padded_batch()
    with torch.no_grad():
        plain = model(src, tgt_in)
        with ablate(model, {("decoder.attention", 0)}):
            ablated = model(src, tgt_in)
    assert not torch.allclose(ablated, plain, atol=1e-3)
    for row, length in enumerate([7, 4, 2]):
        expected, _ = reference(model, src[row, :length].tolist(), tgt_in[row].tolist(), zero_context=True)
        torch.testing.assert_close(ablated[row], expected, atol=1e-6, rtol=0)


def test_ablate_without_attention_is_a_clear_error():
    with pytest.raises(KeyError, match="decoder.attention"):
        with ablate(make_model(attention="none"), {("decoder.attention", 0)}):
            pass


# --- checkpoints of the earlier architecture ----------------------------------------------------------------------

def earlier_checkpoint(path, attention):
    """A checkpoint as attnviz saved it before this architecture: attention "bahdanau" or "luong" was applied after
    the recurrence (weights decoder.attention.{q_proj,k_proj,v}, decoder.combine), the decoder RNN read embeddings."""
    model = make_model("lstm", "none", n_layers=1, bidirectional=False)
    save_checkpoint(path, model, CharTokenizer("abcdefgh"), {})
    meta = json.loads((path / "meta.json").read_text())
    meta["config"] = {k: v for k, v in meta["config"].items() if k != "input_feeding"} | {"attention": attention}
    (path / "meta.json").write_text(json.dumps(meta))
    H = model.config.hidden_size
    old = {"decoder.attention.q_proj.weight": torch.zeros(H, H), "decoder.attention.k_proj.weight": torch.zeros(H, H),
           "decoder.attention.v.weight": torch.zeros(1, H), "decoder.combine.weight": torch.zeros(H, 2 * H),
           "decoder.combine.bias": torch.zeros(H)}
    save_file({**{k: v.contiguous() for k, v in model.state_dict().items()}, **old}, path / "model.safetensors")
    return path


@pytest.mark.parametrize("attention, message", [("bahdanau", "does not fit the model: missing tensors"),
                                                ("luong", "attention='luong' is not possible")])
def test_a_checkpoint_of_the_earlier_architecture_is_a_clear_error(tmp_path, attention, message):
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(earlier_checkpoint(tmp_path / "old", attention))


# --- it learns -----------------------------------------------------------------------------------------------

def reverse_batch(batch_size, generator, min_len=2, max_len=5):
    """Tiny reverse task: src = x + EOS, tgt_in = BOS + reversed(x), tgt_out = reversed(x) + EOS, PAD-padded."""
    lengths = torch.randint(min_len, max_len + 1, (batch_size,), generator=generator).tolist()
    src, tgt_in, tgt_out = (torch.full((batch_size, max_len + 1), PAD) for _ in range(3))
    for i, n in enumerate(lengths):
        x = torch.randint(3, V, (n,), generator=generator)
        src[i, :n + 1] = torch.cat([x, torch.tensor([EOS])])
        tgt_in[i, :n + 1] = torch.cat([torch.tensor([BOS]), x.flip(0)])
        tgt_out[i, :n + 1] = torch.cat([x.flip(0), torch.tensor([EOS])])
    return src, tgt_in, tgt_out


@pytest.mark.parametrize("attention", WITH_ATTENTION)
def test_learns_a_tiny_reverse_task(attention):
    model = make_model("lstm", attention, n_layers=1, bidirectional=False, hidden_size=32).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(200):
        src, tgt_in, tgt_out = reverse_batch(32, generator)
        loss = F.cross_entropy(model(src, tgt_in).flatten(0, 1), tgt_out.flatten(), ignore_index=PAD)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-10:]) / 10 < 0.1 * sum(losses[:10]) / 10
    model.eval()
    src, tgt_in, tgt_out = reverse_batch(200, torch.Generator().manual_seed(1))
    with torch.no_grad():  # greedy decoding through decode_step
        state, token, predicted = model.encode(src), torch.full((200,), BOS), []
        for _ in range(tgt_out.shape[1]):
            logits, state = model.decode_step(state, token)
            token = logits.argmax(-1)
            predicted.append(token)
    correct = ((torch.stack(predicted, 1) == tgt_out) | (tgt_out == PAD)).all(1)
    assert correct.float().mean() > 0.9
