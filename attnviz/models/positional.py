"""Positional encodings: sinusoidal (Vaswani et al., 2017), learned, or none."""
import math

import torch
import torch.nn as nn


def sinusoidal_frequencies(d_model):
    """w_i = 1 / 10000^(2i/d) for i = 0 .. ceil(d/2) - 1, in float64.  # (ceil(D/2),)"""
    return torch.exp(torch.arange(0, d_model, 2, dtype=torch.float64) * (-math.log(10000.0) / d_model))


def sinusoidal_table(max_len, d_model):
    """PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(pos / 10000^(2i/d)).  # (T, D)"""
    position = torch.arange(max_len, dtype=torch.float64)[:, None]  # (T, 1)
    angles = position * sinusoidal_frequencies(d_model)  # (T, ceil(D/2))
    table = torch.zeros(max_len, d_model, dtype=torch.float64)  # (T, D)
    table[:, 0::2] = torch.sin(angles)
    table[:, 1::2] = torch.cos(angles[:, : d_model // 2])
    return table.float()


class PositionalEncoding(nn.Module):
    """Adds position information to (B, T, D) embeddings starting at position `offset`."""

    def __init__(self, kind, max_len, d_model):
        super().__init__()
        self.kind, self.max_len = kind, max_len
        if kind == "sinusoidal":
            self.register_buffer("table", sinusoidal_table(max_len, d_model), persistent=False)
        elif kind == "learned":
            self.table = nn.Parameter(torch.randn(max_len, d_model) * 0.02)
        else:
            self.table = None

    def forward(self, x, offset=0):
        T = x.shape[1]
        if offset + T > self.max_len:
            raise ValueError(f"sequence of {offset + T} tokens is longer than this model's max_len={self.max_len}")
        if self.table is None:
            return x
        return x + self.table[offset : offset + T]  # (B, T, D)
