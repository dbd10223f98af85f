"""The √d_k statistics: Var(q·k) = d_k (closed form) within a statistical tolerance, entropy and softmax gradients
against scipy and autograd on numpy's own Gaussian draws, and a model's own queries and keys recomputed from its
projections."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.special import softmax
from scipy.stats import entropy
from torch.autograd.functional import jacobian

from attnviz import build_model
from attnviz.interpret.scaling import dot_product_stats, model_dot_product_stats, softmax_stats
from attnviz.models.config import TransformerConfig

D_KS = [1, 4, 16, 64, 256]


@pytest.fixture(scope="module")
def stats():
    return dot_product_stats(D_KS, n=8000, generator=torch.Generator().manual_seed(1), n_keys=16)


def test_the_variance_of_q_dot_k_is_d_k(stats):
    """8000 queries x 16 keys per d_k. Var((q·k)^2) = 2 d_k^2 + 6 d_k, and the 16 scores of one query share q
    (covariance 2 d_k between their squares), so the estimate's relative standard error is
    sqrt((2 + 36 / d_k) / 128000): 1.7% at d_k = 1, less above. 6% is more than three of them."""
    assert list(stats["d_k"]) == D_KS
    assert list(stats["expected variance"]) == D_KS
    assert stats["variance"].to_numpy() == pytest.approx(np.array(D_KS, dtype=float), rel=0.06)
    assert stats["scaled variance"].to_numpy() == pytest.approx(np.ones(len(D_KS)), rel=0.06)


def reference(d_k, scale, n=4000, n_keys=16, seed=7):
    """(mean entropy, mean largest |d p_i / d s_j|) of softmax(q·k / scale) on numpy's draws, with scipy's entropy
    and autograd's Jacobian of torch.softmax (on the first 300 rows: enough for the tolerance below)."""
    rng = np.random.default_rng(seed)
    q, k = rng.standard_normal((n, 1, d_k)), rng.standard_normal((n, n_keys, d_k))
    scores = (q * k).sum(-1) / scale  # (n, K)
    entropies = entropy(softmax(scores, axis=-1), axis=-1)
    largest = [jacobian(lambda s: s.softmax(-1), torch.from_numpy(row)).abs().max().item() for row in scores[:300]]
    return entropies.mean(), np.mean(largest)


@pytest.mark.parametrize("d_k", [4, 64])
def test_entropy_and_gradient_match_an_independent_draw(stats, d_k):
    row = stats.set_index("d_k").loc[d_k]
    raw_entropy, raw_gradient = reference(d_k, 1.0)
    scaled_entropy, scaled_gradient = reference(d_k, math.sqrt(d_k))
    assert row["entropy"] == pytest.approx(raw_entropy, rel=0.05)
    assert row["scaled entropy"] == pytest.approx(scaled_entropy, rel=0.05)
    assert row["max gradient"] == pytest.approx(raw_gradient, rel=0.1)
    assert row["scaled max gradient"] == pytest.approx(scaled_gradient, rel=0.1)


def test_scaling_is_what_keeps_the_softmax_alive(stats):
    """Unscaled, the softmax saturates as d_k grows (entropy and gradient fall); scaled, both stay put."""
    assert np.all(np.diff(stats["entropy"]) < 0)
    assert stats["max gradient"].iloc[-1] < 0.5 * stats["scaled max gradient"].iloc[-1]
    assert np.ptp(stats["scaled entropy"]) < 0.15
    assert (stats["scaled entropy"] <= math.log(16)).all()
    first = stats.iloc[0]  # d_k = 1: dividing by 1 changes nothing
    assert first["entropy"] == first["scaled entropy"] and first["max gradient"] == first["scaled max gradient"]


def test_softmax_stats_on_scores_with_blocked_keys():
    scores = torch.tensor([[0.0, 1.0, float("-inf")], [2.0, -1.0, 0.5], [float("-inf")] * 3])  # last row sees nothing
    mean_entropy, mean_gradient = softmax_stats(scores)
    visible = [np.array([0.0, 1.0]), np.array([2.0, -1.0, 0.5])]
    assert mean_entropy == pytest.approx(np.mean([entropy(softmax(row)) for row in visible]))
    expected = [jacobian(lambda s: s.softmax(-1), torch.tensor(row)).abs().max().item() for row in visible]
    assert mean_gradient == pytest.approx(np.mean(expected))


def test_a_models_own_queries_and_keys():
    torch.manual_seed(0)
    model = build_model(TransformerConfig(src_vocab_size=12, tgt_vocab_size=12, pad_id=0, d_model=16, n_heads=2,
                                          n_encoder_layers=1, n_decoder_layers=1, d_ff=32)).eval()
    src, tgt_in = torch.tensor([[3, 4, 5, 6, 2]]), torch.tensor([[1, 7, 8, 9]])
    table = model_dot_product_stats(model, src, tgt_in)
    assert len(table) == 3 * 2  # encoder self, decoder self, cross; two heads each
    attention = model.decoder.layers[0].self_attn
    seen = {}
    handle = attention.register_forward_pre_hook(lambda m, args: seen.update(x=args[0]))
    with torch.no_grad():
        model(src, tgt_in)
    handle.remove()
    row = table[(table["module"] == "decoder.layers.0.self_attn") & (table["head"] == 1)].iloc[0]
    rows = slice(8, 16)  # head 1 of d_model 16 over 2 heads
    q = F.linear(seen["x"][0], attention.q_proj.weight[rows], attention.q_proj.bias[rows]).double()  # (T, 8)
    k = F.linear(seen["x"][0], attention.k_proj.weight[rows], attention.k_proj.bias[rows]).double()  # (T, 8)
    scores = (q @ k.T).detach().numpy()  # (T, T)
    allowed = np.tril(np.ones((4, 4), dtype=bool))  # the causal mask
    assert row["d_k"] == 8
    assert row["variance"] == pytest.approx(scores[allowed].var(ddof=1), rel=1e-5)
    rows_scaled = [softmax(scores[t, : t + 1] / math.sqrt(8)) for t in range(4)]
    assert row["scaled entropy"] == pytest.approx(np.mean([entropy(p) for p in rows_scaled]), rel=1e-5)
    rows_raw = [softmax(scores[t, : t + 1]) for t in range(4)]
    assert row["entropy"] == pytest.approx(np.mean([entropy(p) for p in rows_raw]), rel=1e-5)
