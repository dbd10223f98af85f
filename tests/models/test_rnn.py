"""RNN encoder-decoder: the Transformer's interface tests, plus references for the attention scores."""
import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from attnviz import ablate, build_model, capture, pattern_names
from attnviz.data.tokenizers import CharTokenizer
from attnviz.models.config import RNNConfig
from attnviz.models.rnn import AdditiveAttention, MultiplicativeAttention, RNNSeq2Seq
from attnviz.training.checkpoint import load_checkpoint, save_checkpoint

PAD, BOS, EOS = 0, 1, 2
V = 12
KINDS = list(itertools.product(["rnn", "gru", "lstm"], ["none", "bahdanau", "luong"]))


def make_model(cell="lstm", attention="bahdanau", seed=0, **overrides):
    torch.manual_seed(seed)
    settings = dict(cell=cell, attention=attention, embed_dim=8, hidden_size=16, n_layers=2, bidirectional=True)
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

@pytest.mark.parametrize("field, value", [("cell", "transformer"), ("attention", "dot"), ("hidden_size", 0),
                                          ("n_layers", 1.5), ("dropout", 1.0), ("bidirectional", "yes"),
                                          ("pad_id", V), ("max_len", -1)])
def test_config_rejects_impossible_values(field, value):
    with pytest.raises(ValueError, match=field):
        RNNConfig(V, V, **{field: value})


def test_config_bidirectional_needs_even_hidden_size():
    with pytest.raises(ValueError, match="hidden_size=15.*even"):
        RNNConfig(V, V, hidden_size=15, bidirectional=True)
    RNNConfig(V, V, hidden_size=15, bidirectional=False)


def test_build_model_dispatches_on_config_type():
    config = RNNConfig(V, V, hidden_size=16)
    model = build_model(config)
    assert isinstance(model, RNNSeq2Seq) and model.config is config and model.has_encoder
    assert RNNConfig.from_dict(dict(src_vocab_size=V, tgt_vocab_size=V, cell="gru")).cell == "gru"


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


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_checkpoint_round_trip(cell, tmp_path):
    model = make_model(cell, "luong")
    tokenizer = CharTokenizer("abcdefgh")  # 4 specials + 8 letters = V
    save_checkpoint(tmp_path / "rnn", model, tokenizer, {})
    loaded = load_checkpoint(tmp_path / "rnn")
    src, tgt_in = padded_batch()
    assert loaded.model.config == model.config and loaded.meta["architecture"] == "rnn"
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(src, tgt_in), model(src, tgt_in), atol=0, rtol=0)


# --- attention: references and ablation ---------------------------------------------------------------------------

def test_bahdanau_score_matches_hand_computation():
    attention = AdditiveAttention(query_size=2, key_size=2, attention_size=2)
    with torch.no_grad():
        attention.q_proj.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))  # W_q
        attention.k_proj.weight.copy_(torch.tensor([[0.5, 0.0], [0.0, -1.0]]))  # W_k
        attention.v.weight.copy_(torch.tensor([[1.0, 2.0]]))  # v
    s = torch.tensor([[[0.2, -0.4]]])  # (B=1, Tq=1, 2)
    memory = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [3.0, 3.0]]])  # (1, Tk=3, 2); the last key is padding
    # v^T tanh(W_q s + W_k h): W_q s = (0.2, -0.4); W_k h1 = (0.5, 0), W_k h2 = (0, -1)
    scores = [1 * math.tanh(0.2 + 0.5) + 2 * math.tanh(-0.4 + 0.0), 1 * math.tanh(0.2 + 0.0) + 2 * math.tanh(-0.4 - 1.0)]
    a1 = math.exp(scores[0]) / (math.exp(scores[0]) + math.exp(scores[1]))
    with torch.no_grad(), capture(torch.nn.ModuleDict({"attention": attention})) as cache:
        context = attention(s, attention.project_keys(memory), memory, torch.tensor([[False, False, True]]))
    torch.testing.assert_close(cache["attention.hook_pattern"], torch.tensor([[[[a1, 1 - a1, 0.0]]]]))
    torch.testing.assert_close(context, torch.tensor([[[a1, 1 - a1]]]))  # a1 h1 + a2 h2


def test_luong_score_matches_hand_computation():
    attention = MultiplicativeAttention(query_size=2, key_size=2)
    W = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
    with torch.no_grad():
        attention.k_proj.weight.copy_(W)
    s, h = torch.tensor([0.5, 1.0]), torch.tensor([2.0, 1.0])
    # s^T W h = (0.5, 1.0) . (W h) = (0.5, 1.0) . (4, -1) = 1.0
    assert attention.score(s[None, None], attention.project_keys(h[None, None])).item() == pytest.approx(1.0)


def reference_score(attention, s, h):
    """One score from the formulas, for vectors s (H,) and h (H,)."""
    if isinstance(attention, AdditiveAttention):
        return attention.v.weight[0] @ torch.tanh(attention.q_proj.weight @ s + attention.k_proj.weight @ h)
    return s @ attention.k_proj.weight @ h


@pytest.mark.parametrize("attention", ["bahdanau", "luong"])
def test_forward_matches_the_formulas_step_by_step(attention):
    """logits_t = W_o tanh(W_c [c_t; s_t]), c_t = sum_j softmax_j(score(s_t, h_j)) h_j, one row without padding."""
    model = make_model("gru", attention, n_layers=1, bidirectional=False)
    src, tgt_in = padded_batch()
    src, tgt_in = src[:1], tgt_in[:1]
    encoder, decoder = model.encoder, model.decoder
    with torch.no_grad():
        h, final = encoder.rnn(encoder.embed(src))  # (1, S, H): the encoder states
        s, _ = decoder.rnn(decoder.embed(tgt_in), final)  # (1, T, H): s_0 = the encoder's final state
        expected = []
        for s_t in s[0]:
            scores = torch.stack([reference_score(decoder.attention, s_t, h_j) for h_j in h[0]])
            c_t = scores.softmax(0) @ h[0]
            expected.append(model.lm_head(torch.tanh(decoder.combine(torch.cat([c_t, s_t])))))
        torch.testing.assert_close(model(src, tgt_in)[0], torch.stack(expected), atol=1e-5, rtol=0)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_without_attention_decoder_sees_only_the_final_state(cell):
    model = make_model(cell, "none", n_layers=1, bidirectional=False)
    src, tgt_in = padded_batch()
    with torch.no_grad():
        _, final = model.encoder.rnn(model.encoder.embed(src[:1]))
        s, _ = model.decoder.rnn(model.decoder.embed(tgt_in[:1]), final)
        torch.testing.assert_close(model(src[:1], tgt_in[:1]), model.lm_head(s), atol=1e-6, rtol=0)
    assert model.encode(src).memory is None


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
def test_ablating_the_attention_zeroes_the_context(cell, attention):
    model = make_model(cell, attention, n_layers=1)
    src, tgt_in = padded_batch()
    with torch.no_grad():
        plain = model(src, tgt_in)
        with ablate(model, {("decoder.attention", 0)}):
            ablated = model(src, tgt_in)
        s, _ = model.decoder.rnn(model.decoder.embed(tgt_in), model.encode(src).hidden)  # (B, T, H)
        without_context = model.lm_head(torch.tanh(model.decoder.combine(torch.cat([torch.zeros_like(s), s], -1))))
    assert not torch.allclose(ablated, plain, atol=1e-3)
    torch.testing.assert_close(ablated, without_context, atol=1e-6, rtol=0)


def test_ablate_without_attention_is_a_clear_error():
    with pytest.raises(KeyError, match="decoder.attention"):
        with ablate(make_model(attention="none"), {("decoder.attention", 0)}):
            pass


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


@pytest.mark.parametrize("attention", ["bahdanau", "luong"])
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
