"""Head statistics on constructed patterns, rollout by hand, ablation on a small model, positional algebra."""
import io
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from attnviz import TransformerConfig, build_model, capture
from attnviz.app.text import MECHANICS_FORMULAS
from attnviz.interpret.ablation import ablation_effect, ablation_summary, single_head_effects
from attnviz.interpret.export import npz_bytes, patterns_table
from attnviz.interpret.head_stats import STATS, head_stats, head_stats_table, stat_matrix
from attnviz.interpret.mechanics import head_mechanics
from attnviz.interpret.patterns import KINDS, parse_pattern_name, patterns_of
from attnviz.interpret.positional import (positional_ablation, positional_ablation_summary, positional_similarity,
                                          shift_matrix)
from attnviz.interpret.rollout import attention_rollout
from attnviz.models.positional import sinusoidal_table

PAD, BOS, EOS = 0, 1, 2


def shifted_identity(T):
    """Every query q >= 1 looks only at q - 1; query 0 at itself.  # (1, 1, T, T)"""
    pattern = torch.zeros(T, T)
    pattern[0, 0] = 1.0
    pattern[torch.arange(1, T), torch.arange(T - 1)] = 1.0
    return pattern[None, None]


def test_uniform_rows_have_entropy_log_n():
    T = 5
    stats = head_stats(torch.full((2, 3, T, T), 1 / T))
    assert torch.allclose(stats["entropy"], torch.full((3,), math.log(T)))
    assert torch.allclose(stats["normalised_entropy"], torch.ones(3))
    assert torch.allclose(stats["max_weight"], torch.full((3,), 1 / T))
    distance = np.mean([np.mean([abs(q - k) for k in range(T)]) for q in range(T)])
    assert torch.allclose(stats["distance"], torch.full((3,), distance, dtype=torch.float32))
    assert torch.isnan(stats["sink"]).all()  # no sinks given


def test_shifted_identity_is_a_previous_token_head():
    stats = head_stats(shifted_identity(6), causal=True)
    assert stats["previous_token"].item() == 1.0
    assert stats["next_token"].item() == 0.0
    assert stats["entropy"].item() == 0.0 and stats["max_weight"].item() == 1.0
    assert stats["distance"].item() == pytest.approx(5 / 6)  # row 0 has distance 0


def test_one_hot_on_bos_is_a_sink():
    pattern = torch.zeros(1, 2, 4, 4)
    pattern[..., 0] = 1.0
    assert torch.equal(head_stats(pattern, sinks=[0])["sink"], torch.ones(2))
    tokens = torch.tensor([[BOS, 5, 6, 7]])
    assert torch.equal(head_stats(pattern, sinks=tokens == BOS)["sink"], torch.ones(2))
    assert torch.equal(head_stats(pattern, sinks=[-1])["sink"], torch.zeros(2))


def test_padding_query_rows_are_left_out():
    pattern = torch.full((1, 1, 4, 4), 0.25)
    pattern[0, 0, :2] = torch.eye(4)[:2]  # the two real rows are one-hot; padded rows uniform
    padding = torch.tensor([[False, False, True, True]])
    stats = head_stats(pattern, query_padding_mask=padding)
    assert stats["entropy"].item() == 0.0
    assert stats["max_weight"].item() == 1.0


def test_causal_uniform_rows_have_normalised_entropy_one():
    T = 6
    pattern = torch.ones(T, T).tril()
    pattern = (pattern / pattern.sum(-1, keepdim=True))[None, None]  # row q uniform over q + 1 keys
    stats = head_stats(pattern, causal=True)
    assert stats["entropy"].item() == pytest.approx(np.mean([math.log(q + 1) for q in range(T)]), abs=1e-6)
    assert stats["normalised_entropy"].item() == pytest.approx(1.0, abs=1e-6)  # row 0 (one key) left out


def test_offset_places_a_decoding_step_after_its_prefix():
    pattern = torch.zeros(1, 1, 1, 7)  # one new query at position 6 over 7 cached keys
    pattern[..., 5] = 1.0
    stats = head_stats(pattern, causal=True, offset=6)
    assert stats["previous_token"].item() == 1.0 and stats["distance"].item() == 1.0


def test_parse_pattern_name():
    assert parse_pattern_name("encoder.layers.2.self_attn.hook_pattern") == ("encoder self", 2, "encoder.layers.2.self_attn")
    assert parse_pattern_name("decoder.layers.0.self_attn.hook_pattern")[:2] == ("decoder self", 0)
    assert parse_pattern_name("decoder.layers.1.cross_attn.hook_pattern")[:2] == ("cross", 1)
    assert parse_pattern_name("decoder.attention.hook_pattern") == ("cross", 0, "decoder.attention")
    with pytest.raises(ValueError):
        parse_pattern_name("decoder.layers.0.self_attn.hook_z")


def seq2seq_model(**overrides):
    torch.manual_seed(0)
    config = TransformerConfig(src_vocab_size=11, tgt_vocab_size=13, d_model=16, n_heads=2, n_encoder_layers=2,
                               n_decoder_layers=2, d_ff=32, **overrides)
    return build_model(config).eval()


def seq2seq_batch():
    src = torch.tensor([[5, 6, 7, 8, EOS], [9, 4, EOS, PAD, PAD]])  # (B, S)
    tgt_in = torch.tensor([[BOS, 8, 7, 6, 5], [BOS, 4, 9, PAD, PAD]])  # (B, T)
    tgt_out = torch.tensor([[8, 7, 6, 5, EOS], [4, 9, EOS, PAD, PAD]])
    return src, tgt_in, tgt_out


def reference_entropy(pattern, real_rows):
    """Mean over real (b, q) rows of -sum_k p log p, per head, by plain numpy."""
    p = pattern.double().numpy()
    terms = np.where(p > 0, -p * np.log(np.where(p > 0, p, 1.0)), 0.0).sum(-1)  # (B, H, Tq)
    return np.stack([terms[:, h][real_rows.numpy()].mean() for h in range(p.shape[1])])


def test_head_stats_table_covers_every_head_of_a_model():
    model = seq2seq_model()
    src, tgt_in, _ = seq2seq_batch()
    with capture(model) as cache:
        model(src, tgt_in)
    table = head_stats_table(cache, src=src, tgt=tgt_in)
    assert list(table.columns) == ["kind", "layer", "head", "module", *STATS]
    assert len(table) == 3 * 2 * 2  # kinds x layers x heads
    assert list(table["kind"].unique()) == list(KINDS)
    cross = table[(table["kind"] == "cross") & (table["layer"] == 1)]
    expected = reference_entropy(cache["decoder.layers.1.cross_attn.hook_pattern"], tgt_in != PAD)
    np.testing.assert_allclose(cross["entropy"].to_numpy(), expected, rtol=1e-5)
    assert stat_matrix(table, "encoder self", "entropy").shape == (2, 2)
    assert patterns_of(cache, "cross").shape == (2, 2, 5, 5)
    with pytest.raises(ValueError):
        head_stats_table(cache, src=src[:, :3], tgt=tgt_in)


def test_head_stats_table_for_a_language_model_and_its_sinks():
    torch.manual_seed(0)
    model = build_model(TransformerConfig(src_vocab_size=9, tgt_vocab_size=9, d_model=16, n_heads=2,
                                          n_encoder_layers=0, n_decoder_layers=1, d_ff=32)).eval()
    tokens = torch.tensor([[BOS, 4, 5, 6]])
    with capture(model) as cache:
        model(tokens)
    table = head_stats_table(cache, tgt=tokens)
    assert set(table["kind"]) == {"decoder self"}
    pattern = cache["decoder.layers.0.self_attn.hook_pattern"]  # (1, H, T, T)
    np.testing.assert_allclose(table["sink"].to_numpy(), pattern[0, :, :, 0].mean(-1).numpy(), rtol=1e-5)
    with pytest.raises(ValueError):
        patterns_of(cache, "cross")


def test_rollout_matches_a_hand_computed_two_layer_example():
    layer0 = torch.tensor([[[1.0, 0.0], [0.5, 0.5]], [[1.0, 0.0], [1.0, 0.0]]])  # (H, T, T): mean [[1,0],[.75,.25]]
    layer1 = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [0.0, 1.0]]])  # mean [[.5,.5],[0,1]]
    rollout = attention_rollout(torch.stack([layer0, layer1]))  # (L, T, T)
    a0 = torch.tensor([[1.0, 0.0], [0.375, 0.625]])  # 0.5 * mean + 0.5 * I
    a1 = torch.tensor([[0.75, 0.25], [0.0, 1.0]])
    assert torch.allclose(rollout[0], a0)
    assert torch.allclose(rollout[1], torch.tensor([[0.84375, 0.15625], [0.375, 0.625]]))
    assert torch.allclose(rollout[1], a1 @ a0)


def test_rollout_rows_sum_to_one():
    torch.manual_seed(0)
    patterns = torch.rand(3, 2, 4, 6, 6).softmax(-1)  # (L, B, H, T, T)
    rollout = attention_rollout(patterns)
    assert rollout.shape == (3, 2, 6, 6)
    assert torch.allclose(rollout.sum(-1), torch.ones(3, 2, 6))
    with pytest.raises(ValueError):
        attention_rollout(torch.rand(2, 2, 3, 5))  # cross-attention is not square


def test_ablating_no_heads_changes_nothing():
    model = seq2seq_model()
    effect = ablation_effect(model, seq2seq_batch(), set())
    assert effect.loss_change == 0.0 and effect.accuracy_change == 0.0
    assert torch.equal(effect.probs_before, effect.probs_after)


def test_ablating_a_head_changes_loss_and_probabilities():
    model = seq2seq_model()
    src, tgt_in, tgt_out = seq2seq_batch()
    effect = ablation_effect(model, (src, tgt_in, tgt_out), {("decoder.layers.1.cross_attn", 0)})
    logits = model(src, tgt_in)  # reference loss: torch's cross entropy ignoring padding
    assert effect.loss_before == pytest.approx(F.cross_entropy(logits.flatten(0, 1), tgt_out.flatten(),
                                                               ignore_index=PAD).item(), rel=1e-5)
    assert effect.tokens == int((tgt_out != PAD).sum())
    assert effect.loss_change != 0.0
    assert not torch.allclose(effect.probs_before, effect.probs_after)
    assert torch.allclose(effect.probs_after.sum(-1), torch.ones(2, 5))
    assert torch.equal(model(src, tgt_in), logits)  # the model is left as it was


def test_ablation_summary_weights_batches_by_tokens():
    model = seq2seq_model()
    src, tgt_in, tgt_out = seq2seq_batch()
    batches = [(src[:1], tgt_in[:1], tgt_out[:1]), (src[1:], tgt_in[1:], tgt_out[1:])]
    summary = ablation_summary(model, batches, {("encoder.layers.0.self_attn", 1)})
    whole = ablation_effect(model, (src, tgt_in, tgt_out), {("encoder.layers.0.self_attn", 1)})
    assert summary["tokens"] == whole.tokens
    assert summary["loss_before"] == pytest.approx(whole.loss_before, rel=1e-5)
    assert summary["loss_after"] == pytest.approx(whole.loss_after, rel=1e-5)
    assert summary["accuracy_change"] == pytest.approx(whole.accuracy_change, abs=1e-6)


def test_single_head_effects_list_every_head():
    model = seq2seq_model()
    table = single_head_effects(model, seq2seq_batch())
    assert len(table) == 12
    row = table[(table["module"] == "decoder.layers.0.self_attn") & (table["head"] == 1)].iloc[0]
    alone = ablation_effect(model, seq2seq_batch(), {("decoder.layers.0.self_attn", 1)})
    assert row["loss_change"] == pytest.approx(alone.loss_change, abs=1e-6)


def test_single_head_effects_equal_zeroing_the_heads_columns_of_out_proj():
    """Independent of ablate and of the scorer: on a deep copy, zero the d_head columns of out_proj.weight that read
    one head's slice of the concatenated head outputs, and take F.cross_entropy of the logits directly."""
    import copy
    import torch.nn.functional as F
    model = seq2seq_model()
    src, tgt_in, tgt_out = seq2seq_batch()
    table = single_head_effects(model, (src, tgt_in, tgt_out))

    def loss_and_accuracy(m):
        with torch.no_grad():
            logits = m(src, tgt_in)  # (B, T, V)
        real = tgt_out != PAD  # (B, T)
        loss = F.cross_entropy(logits.flatten(0, 1), tgt_out.flatten(), ignore_index=PAD).item()
        return loss, (logits.argmax(-1) == tgt_out)[real].float().mean().item()

    loss, accuracy = loss_and_accuracy(model)
    d_head = model.config.d_model // model.config.n_heads
    for row in table.itertuples():
        off = copy.deepcopy(model)
        with torch.no_grad():
            off.get_submodule(row.module).out_proj.weight[:, row.head * d_head:(row.head + 1) * d_head] = 0.0
        loss_off, accuracy_off = loss_and_accuracy(off)
        assert row.loss_change == pytest.approx(loss_off - loss, abs=1e-5), (row.module, row.head)
        assert row.accuracy_change == pytest.approx(accuracy_off - accuracy, abs=1e-6), (row.module, row.head)
    assert (table["loss_change"].abs() > 1e-4).any()  # the heads matter, so the comparison can fail


def test_language_model_batches_have_no_source():
    torch.manual_seed(0)
    model = build_model(TransformerConfig(src_vocab_size=9, tgt_vocab_size=9, d_model=16, n_heads=2,
                                          n_encoder_layers=0, n_decoder_layers=1, d_ff=32)).eval()
    tokens = torch.tensor([[BOS, 4, 5, 6, 7]])
    effect = ablation_effect(model, (None, tokens[:, :-1], tokens[:, 1:]), {("decoder.layers.0.self_attn", 0)})
    assert effect.probs_before.shape == (1, 4, 9) and effect.loss_change != 0.0
    with pytest.raises(ValueError):
        ablation_effect(seq2seq_model(), (None, tokens[:, :-1], tokens[:, 1:]), set())


@pytest.mark.parametrize("d_model", [8, 16, 64])
@pytest.mark.parametrize("k", [1, 3, 10])
def test_shift_matrix_moves_sinusoidal_rows_by_k(d_model, k):
    table = sinusoidal_table(60, d_model)  # (T, D)
    shifted = table[:-k] @ shift_matrix(d_model, k).T  # row p: M_k PE(p)
    torch.testing.assert_close(shifted, table[k:], atol=1e-5, rtol=0)


def test_shift_matrix_needs_an_even_width():
    with pytest.raises(ValueError):
        shift_matrix(7, 1)


def test_positional_similarity():
    table = sinusoidal_table(20, 16)
    # sin(wp) sin(wq) + cos(wp) cos(wq) = cos(w (p - q)): sinusoidal dot products depend only on the offset
    offsets = np.arange(20)[:, None] - np.arange(20)[None, :]  # (T, T)
    w = 1 / 10000 ** (np.arange(8) * 2 / 16)  # (D/2,)
    expected = np.cos(offsets[..., None] * w).sum(-1)  # (T, T)
    np.testing.assert_allclose(positional_similarity(table).numpy(), expected, atol=1e-4, rtol=0)
    cosine = positional_similarity(table, cosine=True)
    np.testing.assert_allclose(cosine.numpy(), expected / 8, atol=1e-5, rtol=0)  # every row has norm sqrt(D/2)


@pytest.mark.parametrize("module", ["encoder.layers.1.self_attn", "decoder.layers.0.self_attn",
                                    "decoder.layers.1.cross_attn"])
@pytest.mark.parametrize("row", [0, 1])  # row 1 has padding in source and target
def test_head_mechanics_reproduces_the_model(module, row):
    model = seq2seq_model()
    src, tgt_in, _ = seq2seq_batch()
    result = head_mechanics(model, lambda: model(src, tgt_in), module, head=1, row=row)
    assert result.weights_error < 1e-5 and result.output_error < 1e-5
    steps = result.steps
    assert list(steps) == [name for name in MECHANICS_FORMULAS if name in steps]
    assert ("X_kv" in steps) == module.endswith("cross_attn")
    assert steps["W_Q"].shape == (16, 8) and steps["Q"].shape == (5, 8)
    assert steps["concat"].shape == (5, 16) and steps["output"].shape == (5, 16)
    blocked = torch.isinf(steps["masked"])
    if module.startswith("decoder.layers.0.self"):
        assert torch.equal(blocked, torch.ones(5, 5, dtype=torch.bool).triu(1))
    elif row == 1:
        assert torch.equal(blocked, (src[1] == PAD).expand(5, 5))  # source padding is masked
    assert torch.allclose(steps["weights"].sum(-1), torch.ones(5))


def test_head_mechanics_rejects_unknown_modules_and_heads():
    model = seq2seq_model()
    src, tgt_in, _ = seq2seq_batch()
    with pytest.raises(ValueError):
        head_mechanics(model, lambda: model(src, tgt_in), "decoder.layers.0.ff", 0)
    with pytest.raises(ValueError):
        head_mechanics(model, lambda: model(src, tgt_in), "decoder.layers.0.self_attn", 2)


def language_model(positional="sinusoidal"):
    torch.manual_seed(0)
    return build_model(TransformerConfig(src_vocab_size=9, tgt_vocab_size=9, d_model=16, n_heads=2,
                                         n_encoder_layers=0, n_decoder_layers=2, d_ff=32,
                                         positional=positional)).eval()


def test_removing_positions_equals_a_model_without_them():
    model, tokens = language_model(), torch.tensor([[BOS, 4, 5, 6, 7, 8]])
    reference = language_model("none")
    reference.load_state_dict(model.state_dict())  # the sinusoidal table is not a stored weight
    expected = model(tokens)
    with positional_ablation(model, "remove"):
        torch.testing.assert_close(model(tokens), reference(tokens))
    torch.testing.assert_close(model(tokens), expected)  # unchanged afterwards
    with pytest.raises(ValueError):
        positional_ablation(reference, "remove").__enter__()


def test_shuffling_positions_permutes_the_table():
    model, tokens = language_model("learned"), torch.tensor([[BOS, 4, 5, 6, 7, 8]])
    order = torch.randperm(6, generator=torch.Generator().manual_seed(3))
    reference = language_model("learned")
    state = model.state_dict()
    state["decoder.embed.positional.table"] = state["decoder.embed.positional.table"].clone()
    state["decoder.embed.positional.table"][:6] = model.decoder.embed.positional.table[order]
    reference.load_state_dict(state)
    with positional_ablation(model, "shuffle", seed=3):
        torch.testing.assert_close(model(tokens), reference(tokens))


def test_positional_ablation_summary_hurts_a_model_that_uses_positions():
    model, tokens = language_model(), torch.tensor([[BOS, 4, 5, 6, 7, 8]])
    summary = positional_ablation_summary(model, [(None, tokens[:, :-1], tokens[:, 1:])], "remove")
    assert summary["tokens"] == 5 and summary["loss_change"] != 0.0
    with pytest.raises(ValueError):
        positional_ablation_summary(model, [(None, tokens[:, :-1], tokens[:, 1:])], "reverse")


def test_patterns_table_and_npz_export():
    model = seq2seq_model()
    src, tgt_in, _ = seq2seq_batch()
    with capture(model) as cache:
        model(src, tgt_in)
    src_labels, tgt_labels = list("abcd") + ["<eos>"], ["<bos>"] + list("dcba")
    table = patterns_table(cache, src_labels, tgt_labels, row=0)
    assert len(table) == sum(p[0].numel() for p in cache.values())
    cross = table[(table["name"] == "decoder.layers.1.cross_attn.hook_pattern") & (table["head"] == 1)
                  & (table["query"] == 2) & (table["key"] == 4)].iloc[0]
    assert cross["query_token"] == "c" and cross["key_token"] == "<eos>"
    assert cross["weight"] == pytest.approx(cache["decoder.layers.1.cross_attn.hook_pattern"][0, 1, 2, 4].item())
    loaded = np.load(io.BytesIO(npz_bytes(cache)))
    assert set(loaded.files) == set(cache)
    for name, tensor in cache.items():
        np.testing.assert_array_equal(loaded[name], tensor.numpy())


def test_rnn_attention_is_one_cross_attention_head():
    from attnviz.models.config import RNNConfig
    torch.manual_seed(0)
    model = build_model(RNNConfig(src_vocab_size=11, tgt_vocab_size=13, embed_dim=8, hidden_size=16)).eval()
    src, tgt_in, tgt_out = seq2seq_batch()
    with capture(model) as cache:
        model(src, tgt_in)
    table = head_stats_table(cache, src=src, tgt=tgt_in)
    assert table[["kind", "layer", "head"]].values.tolist() == [["cross", 0, 0]]
    effects = single_head_effects(model, (src, tgt_in, tgt_out))
    assert effects["module"].tolist() == ["decoder.attention"] and effects["loss_change"].iloc[0] != 0.0
