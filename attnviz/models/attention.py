"""Multi-head attention with two paths that give the same numbers.

Fused: `F.scaled_dot_product_attention`, used when nobody listens to `hook_pattern`.
Explicit: softmax(QK^T / sqrt(d_head)) V with the weights materialised and passed through
`hook_pattern`, used as soon as the current context listens there (capture never changes results), and in
training with dropout, whose mask comes from the run's generator (`attnviz.models.randomness`), not the global RNG.
Masks follow PyTorch: boolean, True = blocked. A query that may see no key at all gets zero weights and a zero
output on both paths and every device: its row is unblocked before the softmax (so no kernel ever meets a row of
only -inf, which some CUDA kernels turn into NaN, in the forward or the backward pass) and zeroed after.
`is_causal=True` says `attn_mask` is exactly the square causal mask: the fused path then hands SDPA `is_causal`
instead of a boolean tensor, which lets it pick flash kernels; the explicit path still uses the mask.
"""
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from attnviz.models.hooks import HookPoint
from attnviz.models.randomness import dropout as drop


@dataclass
class KVCache:
    """Keys and values seen so far by one attention module, each (B, H, T, d_head).

    `static` caches (cross-attention) are filled once from the encoder's memory and then reused.
    The module replaces `k` and `v` with new tensors and never writes into old ones, so a shallow
    `copy()` is enough to keep an earlier decoding state valid.
    """
    k: torch.Tensor | None = None
    v: torch.Tensor | None = None
    static: bool = False

    def copy(self):
        return KVCache(self.k, self.v, self.static)

    def select(self, index):
        """Keep/reorder batch rows (beam search)."""
        if self.k is None:
            return self.copy()
        return KVCache(self.k.index_select(0, index), self.v.index_select(0, index), self.static)


def blocked_mask(attn_mask, key_padding_mask):
    """Combine (Tq, Tk) and (B, Tk) masks into one broadcastable (B|1, 1, Tq|1, Tk) mask, or None."""
    blocked = None
    if attn_mask is not None:
        blocked = attn_mask[None, None]  # (1, 1, Tq, Tk)
    if key_padding_mask is not None:
        padding = key_padding_mask[:, None, None, :]  # (B, 1, 1, Tk)
        blocked = padding if blocked is None else blocked | padding
    return blocked


class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, n_heads, dropout=0.0, bias=True):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        self.n_heads, self.d_head, self.dropout = n_heads, d_model // n_heads, dropout
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        self.hook_pattern = HookPoint()  # (B, H, Tq, Tk) attention probabilities
        self.hook_z = HookPoint()  # (B, Tq, H, d_head) each head's output before out_proj

    def split_heads(self, x):
        B, T, _ = x.shape
        return x.view(B, T, self.n_heads, self.d_head).transpose(1, 2)  # (B, H, T, d_head)

    def keys_values(self, key, value, cache):
        """Project key/value, joined with (or, for a static cache, taken from) the cache."""
        if cache is not None and cache.static and cache.k is not None:
            return cache.k, cache.v
        k, v = self.split_heads(self.k_proj(key)), self.split_heads(self.v_proj(value))  # (B, H, Tk, d_head)
        if cache is not None:
            if cache.k is not None:
                k, v = torch.cat([cache.k, k], dim=2), torch.cat([cache.v, v], dim=2)  # (B, H, T_cached + Tk, d_head)
            cache.k, cache.v = k, v
        return k, v

    def forward(self, query, key, value, attn_mask=None, key_padding_mask=None, cache=None, is_causal=False):
        B, Tq, D = query.shape
        q = self.split_heads(self.q_proj(query))  # (B, H, Tq, d_head)
        k, v = self.keys_values(key, value, cache)  # (B, H, Tk, d_head)
        blocked = blocked_mask(attn_mask, key_padding_mask)  # (B|1, 1, Tq|1, Tk) or None
        exactly_causal = is_causal and key_padding_mask is None and Tq == k.shape[2]
        sees_nothing = None  # (B|1, 1, Tq|1, 1) True for a query that may see no key
        if blocked is not None and not exactly_causal:  # a causal row always sees its own position
            sees_nothing = blocked.all(dim=-1, keepdim=True)
            blocked = blocked & ~sees_nothing  # such a row sees every key for now: a finite softmax everywhere
        dropout = self.dropout if self.training else 0.0
        if self.hook_pattern.active or dropout > 0:  # the fused kernel's dropout would draw from the global RNG
            scores = (q / math.sqrt(self.d_head)) @ k.transpose(-2, -1)  # (B, H, Tq, Tk)
            if blocked is not None:  # adding a -inf bias in place is ~3x cheaper than masked_fill here
                scores += torch.zeros(blocked.shape, dtype=scores.dtype, device=scores.device).masked_fill_(
                    blocked, float("-inf"))  # (B|1, 1, Tq|1, Tk)
            pattern = scores.softmax(dim=-1)  # (B, H, Tq, Tk)
            if sees_nothing is not None:
                pattern = pattern.masked_fill(sees_nothing, 0.0)
            pattern = self.hook_pattern(pattern)
            z = drop(pattern, dropout, self.training) @ v  # (B, H, Tq, d_head)
        else:
            if exactly_causal:  # no mask tensor: SDPA may take a flash kernel
                z = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:
                z = F.scaled_dot_product_attention(q, k, v, attn_mask=None if blocked is None else ~blocked)
            if sees_nothing is not None:
                z = z.masked_fill(sees_nothing, 0.0)  # (B, H, Tq, d_head)
        z = self.hook_z(z.transpose(1, 2))  # (B, Tq, H, d_head)
        return self.out_proj(z.reshape(B, Tq, D))  # (B, Tq, D)
