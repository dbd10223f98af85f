"""Positional encodings against the formula of Vaswani et al. (2017), computed independently."""
import math

import numpy as np
import pytest
import torch

from attnviz.models.positional import PositionalEncoding, sinusoidal_table


def formula(max_len, d_model):
    """PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(pos / 10000^(2i/d)), one entry at a time."""
    pe = np.zeros((max_len, d_model))
    for pos in range(max_len):
        for dim in range(d_model):
            angle = pos / 10000 ** (2 * (dim // 2) / d_model)
            pe[pos, dim] = math.sin(angle) if dim % 2 == 0 else math.cos(angle)
    return pe


def shift_matrix(k, d_model):
    """M_k with PE(pos + k) = M_k PE(pos): a 2x2 rotation by k * w_i on each (sin, cos) pair."""
    paired = 2 * (d_model // 2)  # with odd d_model the last sine has no cosine partner
    m = np.zeros((paired, paired))
    for i in range(d_model // 2):
        w = 1 / 10000 ** (2 * i / d_model)
        c, s = math.cos(k * w), math.sin(k * w)
        m[2 * i: 2 * i + 2, 2 * i: 2 * i + 2] = [[c, s], [-s, c]]
    return m


@pytest.mark.parametrize("max_len,d_model", [(50, 16), (200, 64), (30, 7), (10, 1)])
def test_sinusoidal_table_equals_formula(max_len, d_model):
    table = sinusoidal_table(max_len, d_model)
    assert table.shape == (max_len, d_model) and table.dtype == torch.float32
    np.testing.assert_allclose(table.numpy(), formula(max_len, d_model), atol=1e-6, rtol=0)


@pytest.mark.parametrize("d_model", [16, 64, 7])
@pytest.mark.parametrize("k", [1, 5, 40])
def test_shift_by_k_is_one_fixed_linear_map_for_every_position(d_model, k):
    max_len = 200
    table = sinusoidal_table(max_len, d_model).double().numpy()
    m = shift_matrix(k, d_model)
    paired = m.shape[0]
    shifted = table[:-k, :paired] @ m.T  # (max_len - k, paired): M_k PE(pos) for every pos at once
    np.testing.assert_allclose(shifted, table[k:, :paired], atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", ["sinusoidal", "learned", "none"])
def test_positional_encoding_adds_the_rows_at_the_offset(kind):
    torch.manual_seed(0)
    encoding = PositionalEncoding(kind, max_len=20, d_model=6)
    x = torch.randn(2, 4, 6)
    out = encoding(x, offset=3)
    if kind == "none":
        assert encoding.table is None
        torch.testing.assert_close(out, x)
        return
    expected_table = torch.tensor(formula(20, 6), dtype=torch.float32) if kind == "sinusoidal" else encoding.table
    torch.testing.assert_close(out, x + expected_table[3:7], atol=1e-6, rtol=0)
    assert isinstance(encoding.table, torch.nn.Parameter) == (kind == "learned")


def test_too_long_input_names_max_len():
    encoding = PositionalEncoding("sinusoidal", max_len=8, d_model=4)
    encoding(torch.zeros(1, 8, 4))
    with pytest.raises(ValueError, match="max_len=8"):
        encoding(torch.zeros(1, 6, 4), offset=3)
