"""The "Why divide by √d_k" section of the attention-mechanics page: Gaussian scores against the closed form
Var(q·k) = d_k, and the model's own heads against softmax weights recomputed from the module's projections."""
import numpy as np
import pytest
from page_helpers import array, charts
from page_helpers import open_page as open_any_page
from scipy.stats import entropy
from test_mechanics_page import reference_weights

PAGE = "pages/mechanics.py"
D_KS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]


def curves_of(figure):
    return {trace["name"]: array(trace["y"]) for trace in figure["data"]}


def test_gaussian_scores_follow_the_closed_form(page_models):
    at = open_any_page(PAGE, model="test-reverse", text="abcde", attention="encoder self")
    assert not at.exception
    variance = curves_of(charts(at)["scaling_variance"])
    assert list(array(charts(at)["scaling_variance"]["data"][0]["x"])) == D_KS
    assert list(variance["closed form d_k"]) == D_KS
    # 500 queries x 16 keys: relative standard error sqrt((2 + 36 / d_k) / 8000), 6.9% at d_k = 1; 25% is 3.6 of them
    assert variance["q·k"] == pytest.approx(np.array(D_KS, dtype=float), rel=0.25)
    assert variance["q·k / √d_k"] == pytest.approx(np.ones(len(D_KS)), rel=0.25)
    at.slider(key="scaling_keys").set_value(64).run()
    entropies = curves_of(charts(at)["scaling_entropy"])
    assert (entropies["q·k / √d_k"] <= np.log(64)).all() and entropies["q·k / √d_k"].min() > np.log(64) - 1.5
    assert entropies["q·k"][-1] < 0.5 * entropies["q·k / √d_k"][-1]  # unscaled, the softmax has saturated


def test_the_models_own_heads(page_models):
    at = open_any_page(PAGE, model="test-reverse", text="abcde", attention="encoder self")
    table = at.dataframe[0].value  # the only table of the page
    assert len(table) == 3 * 2 + 2  # two encoder layers of self-attention, a decoder's self and cross; 2 heads each
    for module, head in [("encoder.layers.1.self_attn", 1), ("decoder.layers.0.cross_attn", 0)]:
        _, _, weights = reference_weights("test-reverse", "abcde", module, head)  # softmax(QK^T/√d_k + mask)
        row = table[(table["module"] == module) & (table["head"] == head)].iloc[0]
        assert row["d_k"] == 16
        assert row["scaled entropy"] == pytest.approx(np.mean([entropy(p) for p in weights]), rel=1e-4)
