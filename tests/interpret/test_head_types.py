"""Head-type scores against constructed patterns with a known answer, and on a trained attention-only model."""
import pytest
import torch

from attnviz.data.tokenizers import BOS, CharTokenizer
from attnviz.interpret.head_types import (bracket_pairs, bracket_score, bracket_table, duplicate_token_score,
                                          head_type_table, induction_score, previous_token_score, probe_tokens)
from attnviz.models import TransformerConfig, build_model


def one_hot_rows(keys, T):
    """A (1, 1, T, T) pattern whose row q puts all weight on keys[q]."""
    pattern = torch.zeros(1, 1, T, T)
    pattern[0, 0, torch.arange(T), torch.tensor(keys)] = 1.0
    return pattern


def uniform_causal(T):
    return (torch.tril(torch.ones(T, T)) / torch.arange(1, T + 1)[:, None])[None, None]  # (1, 1, T, T)


def test_an_exact_previous_token_head_scores_1_and_uniform_scores_chance():
    T = 9
    assert previous_token_score(one_hot_rows([0] + list(range(T - 1)), T)).item() == pytest.approx(1.0)
    chance = sum(1 / (q + 1) for q in range(1, T)) / (T - 1)  # row q spreads over q + 1 keys
    assert previous_token_score(uniform_causal(T)).item() == pytest.approx(chance)


def test_an_exact_induction_head_scores_1_and_uniform_scores_chance():
    half, T = 6, 1 + 2 * 6
    keys = list(range(T))  # rows that are not scored look at themselves
    for j in range(half - 1):
        keys[1 + half + j] = 1 + j + 1  # second occurrence of x_{j+1} -> the token after its first occurrence
    assert induction_score(one_hot_rows(keys, T), half).item() == pytest.approx(1.0)
    chance = sum(1 / (q + 1) for q in range(1 + half, 2 * half)) / (half - 1)
    assert induction_score(uniform_causal(T), half).item() == pytest.approx(chance)
    # a previous-token head is no induction head
    assert induction_score(one_hot_rows([0] + list(range(T - 1)), T), half).item() == 0.0


def test_duplicate_token_score_counts_weight_on_earlier_copies():
    tokens = torch.tensor([[BOS, 5, 6, 5, 7, 6]])
    # position 3 (5) copies position 1; position 5 (6) copies position 2; the others have no earlier copy
    pattern = one_hot_rows([0, 0, 1, 1, 3, 2], 6)
    assert duplicate_token_score(pattern, tokens).item() == pytest.approx(1.0)
    half_weight = one_hot_rows([0, 0, 1, 2, 3, 4], 6)  # position 3 looks at 2 (not a copy), 5 at 4 (not a copy)
    assert duplicate_token_score(half_weight, tokens).item() == 0.0


def test_bracket_pairs_match_nesting_and_drop_mismatches():
    assert bracket_pairs("f(a[1], {b: (c)})") == [(5, 3), (14, 12), (15, 8), (16, 1)]
    assert bracket_pairs("(]") == [] and bracket_pairs(")(") == []


def test_bracket_score_weight_and_hit_rate():
    pattern = torch.zeros(1, 2, 4, 4)
    pattern[0, 0, 3, 1] = 1.0  # head 0 looks from the closer at 3 to the opener at 1
    pattern[0, 1, 3] = torch.tensor([0.4, 0.3, 0.3, 0.0])  # head 1 mostly elsewhere
    weight, hits = bracket_score(pattern, [[(3, 1)]])
    assert weight.tolist() == pytest.approx([1.0, 0.3]) and hits.tolist() == [1.0, 0.0]


def test_probe_tokens_repeat_ordinary_tokens():
    tokens = probe_tokens(30, half=7, n=3, seed=1)
    assert tokens.shape == (3, 15) and (tokens[:, 0] == BOS).all()
    assert torch.equal(tokens[:, 1:8], tokens[:, 8:]) and tokens[:, 1:].min() >= 4
    assert torch.equal(tokens, probe_tokens(30, half=7, n=3, seed=1))


def test_head_type_table_on_a_model_with_chance_columns():
    torch.manual_seed(0)
    model = build_model(TransformerConfig(20, 20, d_model=16, n_heads=2, n_encoder_layers=0, n_decoder_layers=2,
                                          d_ff=0, max_len=32))
    table = head_type_table(model, half=8, n=4)
    assert list(table[["layer", "head"]].itertuples(index=False, name=None)) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert ((table[["previous_token", "duplicate_token", "induction"]] >= 0) &
            (table[["previous_token", "duplicate_token", "induction"]] <= 1)).all().all()
    assert table["induction chance"].iloc[0] == pytest.approx(sum(1 / (q + 1) for q in range(9, 16)) / 7)


def test_bracket_table_lines_brackets_up_with_tokens():
    tokenizer = CharTokenizer("f(a)[]{} ,")
    torch.manual_seed(0)
    model = build_model(TransformerConfig(tokenizer.vocab_size, tokenizer.vocab_size, d_model=16, n_heads=2,
                                          n_encoder_layers=0, n_decoder_layers=1, d_ff=16, max_len=32))
    table = bracket_table(model, tokenizer, ["f(a)", "f([a], {a})"])
    assert len(table) == 2 and table["bracket_hit_rate"].between(0, 1).all()


def test_induction_over_training_reads_the_snapshots():
    from attnviz.data.synthetic import repeat_split
    from attnviz.data.tasks import make_task
    from attnviz.interpret.head_types import induction_over_training

    task = make_task("induction", seed=0, n_train=50, n_val=5, n_test=5)
    P, T = len(task.probes), max(map(len, task.probes))
    exact = torch.zeros(P, 1, T, T)  # (P, H, Tq, Tk): head 0 of layer 1 is an exact induction head
    losses = torch.ones(P, T)
    for p, probe in enumerate(task.probes):
        prefix, h = repeat_split(probe)
        first = 1 + prefix  # tgt_in position of x_1: after BOS and the prefix
        exact[p, 0, torch.arange(T), torch.arange(T)] = 1.0
        for j in range(h - 1):
            exact[p, 0, first + h + j] = 0.0
            exact[p, 0, first + h + j, first + j + 1] = 1.0
        losses[p, prefix + h + 1:] = 0.25
    snapshots = [{"step": 10, "losses": losses.numpy(),
                  "patterns": {"decoder.layers.0.self_attn.hook_pattern": torch.zeros(P, 1, T, T).numpy(),
                               "decoder.layers.1.self_attn.hook_pattern": exact.numpy()}}]
    row = induction_over_training(task, snapshots).iloc[0]
    assert row["L1H0"] == pytest.approx(1.0) and row["L0H0"] == 0.0
    assert row["first half loss"] == pytest.approx(1.0) and row["repeated half loss"] == pytest.approx(0.25)
