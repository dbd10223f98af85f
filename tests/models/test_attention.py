"""MultiHeadAttention against torch.nn.MultiheadAttention with the same weights, on both paths."""
import pytest
import torch
import torch.nn as nn

from attnviz import capture
from attnviz.models.attention import MultiHeadAttention

D, H, B = 16, 4, 3
SDPA = torch.nn.functional.scaled_dot_product_attention  # the real one, for spies that wrap it


def pair(dropout=0.0, bias=True):
    """Our attention and torch's, holding identical weights, both in eval mode."""
    torch.manual_seed(0)
    ours = MultiHeadAttention(D, H, dropout=dropout, bias=bias).eval()
    theirs = nn.MultiheadAttention(D, H, dropout=dropout, bias=bias, batch_first=True).eval()
    with torch.no_grad():
        theirs.in_proj_weight.copy_(torch.cat([ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight]))
        theirs.out_proj.weight.copy_(ours.out_proj.weight)
        if bias:
            theirs.in_proj_bias.copy_(torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias]))
            theirs.out_proj.bias.copy_(ours.out_proj.bias)
    return ours, theirs


def masks(Tq, Tk, with_attn_mask, with_padding):
    """Random boolean masks (True = blocked) that leave every query at least key 0."""
    g = torch.Generator().manual_seed(1)
    attn_mask = key_padding_mask = None
    if with_attn_mask:
        attn_mask = torch.rand(Tq, Tk, generator=g) < 0.4  # (Tq, Tk)
        attn_mask[:, 0] = False
    if with_padding:
        key_padding_mask = torch.rand(B, Tk, generator=g) < 0.3  # (B, Tk)
        key_padding_mask[:, 0] = False
        key_padding_mask[0, -2:] = True  # at least one row really padded
    return attn_mask, key_padding_mask


def inputs(Tq, Tk, self_attention):
    torch.manual_seed(2)
    query = torch.randn(B, Tq, D)
    if self_attention:
        return query, query, query
    return query, torch.randn(B, Tk, D), torch.randn(B, Tk, D)


@pytest.mark.parametrize("with_attn_mask", [False, True])
@pytest.mark.parametrize("with_padding", [False, True])
@pytest.mark.parametrize("Tq,Tk,self_attention", [(5, 5, True), (4, 7, False)])
@pytest.mark.parametrize("dropout,bias", [(0.0, True), (0.3, True), (0.0, False)])
def test_matches_torch_multihead_attention(with_attn_mask, with_padding, Tq, Tk, self_attention, dropout, bias):
    ours, theirs = pair(dropout, bias)
    query, key, value = inputs(Tq, Tk, self_attention)
    attn_mask, key_padding_mask = masks(Tq, Tk, with_attn_mask, with_padding)
    expected_out, expected_weights = theirs(query, key, value, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                                            need_weights=True, average_attn_weights=False)  # (B, Tq, D), (B, H, Tq, Tk)

    fused = ours(query, key, value, attn_mask=attn_mask, key_padding_mask=key_padding_mask)
    with capture(ours) as cache:
        explicit = ours(query, key, value, attn_mask=attn_mask, key_padding_mask=key_padding_mask)

    torch.testing.assert_close(fused, expected_out, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(explicit, expected_out, atol=1e-6, rtol=1e-5)
    assert cache["hook_pattern"].shape == (B, H, Tq, Tk)
    torch.testing.assert_close(cache["hook_pattern"], expected_weights, atol=1e-6, rtol=1e-5)


def test_pattern_rows_sum_to_one_and_blocked_keys_get_zero():
    ours, _ = pair()
    query, key, value = inputs(4, 7, self_attention=False)
    attn_mask, key_padding_mask = masks(4, 7, True, True)
    with capture(ours) as cache:
        ours(query, key, value, attn_mask=attn_mask, key_padding_mask=key_padding_mask)
    pattern = cache["hook_pattern"]  # (B, H, Tq, Tk)
    torch.testing.assert_close(pattern.sum(-1), torch.ones(B, H, 4))
    blocked = attn_mask[None, None] | key_padding_mask[:, None, None, :]  # (B, 1, Tq, Tk)
    assert (pattern[blocked.expand_as(pattern)] == 0).all()


def test_dropout_is_applied_in_training_only():
    ours, _ = pair(dropout=0.5)
    query, key, value = inputs(5, 5, self_attention=True)
    eval_out = ours(query, key, value)
    ours.train()
    torch.manual_seed(3)
    train_out = ours(query, key, value)
    assert not torch.allclose(train_out, eval_out)


def test_head_count_must_divide_d_model():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 4)


def test_a_query_that_sees_no_key_gets_zero_weights_and_output_on_both_paths():
    """As F.scaled_dot_product_attention defines it: a fully blocked row attends to nothing (never NaN)."""
    ours, _ = pair()
    query, key, value = inputs(4, 5, self_attention=False)
    key_padding_mask = torch.zeros(B, 5, dtype=torch.bool)
    key_padding_mask[1] = True  # batch row 1 has nothing to look at
    fused = ours(query, key, value, key_padding_mask=key_padding_mask)
    with capture(ours) as cache:
        explicit = ours(query, key, value, key_padding_mask=key_padding_mask)
    nothing_seen = ours.out_proj.bias.expand(4, D)  # every head's output is 0, so only out_proj's bias is left
    torch.testing.assert_close(fused[1], nothing_seen)
    torch.testing.assert_close(explicit, fused, atol=1e-6, rtol=1e-5)
    assert (cache["hook_pattern"][1] == 0).all()
    torch.testing.assert_close(cache["hook_pattern"][[0, 2]].sum(-1), torch.ones(2, H, 4))


def causal(T):
    return torch.ones(T, T, dtype=torch.bool).triu(1)  # (T, T) True above the diagonal


def outputs_and_grads(module, query, **kwargs):
    """The output and the gradients of the input and of every weight, for one backward of a fixed projection."""
    query = query.detach().clone().requires_grad_(True)
    module.zero_grad(set_to_none=True)
    out = module(query, query, query, **kwargs)
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    return [out.detach(), query.grad] + [p.grad.clone() for p in module.parameters()]


def test_the_is_causal_path_equals_the_boolean_mask_and_the_explicit_path_with_gradients(monkeypatch):
    ours, _ = pair()
    query = inputs(6, 6, self_attention=True)[0]
    calls = []

    def spy(*args, **kwargs):
        calls.append((kwargs.get("is_causal", False), kwargs.get("attn_mask")))
        return SDPA(*args, **kwargs)

    monkeypatch.setattr("attnviz.models.attention.F.scaled_dot_product_attention", spy)
    flagged = outputs_and_grads(ours, query, attn_mask=causal(6), is_causal=True)
    assert calls == [(True, None)]  # SDPA got is_causal and no mask tensor
    boolean = outputs_and_grads(ours, query, attn_mask=causal(6))
    assert calls[1][0] is False and calls[1][1] is not None
    with capture(ours):
        explicit = outputs_and_grads(ours, query, attn_mask=causal(6), is_causal=True)
    assert len(calls) == 2  # the explicit path never calls SDPA
    for a, b, c in zip(flagged, boolean, explicit):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(a, c, atol=1e-6, rtol=1e-5)


def test_is_causal_with_padding_or_a_non_square_mask_keeps_the_mask_tensor(monkeypatch):
    ours, _ = pair()
    query = inputs(5, 5, self_attention=True)[0]
    seen = []
    monkeypatch.setattr("attnviz.models.attention.F.scaled_dot_product_attention",
                        lambda *a, **k: seen.append(k.get("is_causal", False)) or SDPA(*a, **k))
    padding = torch.zeros(B, 5, dtype=torch.bool)
    padding[0, -1] = True
    ours(query, query, query, attn_mask=causal(5), key_padding_mask=padding, is_causal=True)
    assert seen == [False]


def nan_for_rows_that_see_nothing(*args, attn_mask=None, **kwargs):
    """F.scaled_dot_product_attention as some CUDA kernels behave: NaN for a query whose mask allows no key."""
    z = SDPA(*args, attn_mask=attn_mask, **kwargs)
    if attn_mask is None:
        return z
    return z.masked_fill(~attn_mask.any(-1, keepdim=True), float("nan"))


@pytest.mark.parametrize("path", ["fused", "explicit", "fused, NaN kernel"])
def test_a_query_that_sees_no_key_gives_zeros_and_finite_gradients(path, monkeypatch):
    """Zeros forward and finite gradients backward, even under a kernel that returns NaN for a fully blocked row."""
    if path == "fused, NaN kernel":
        monkeypatch.setattr("attnviz.models.attention.F.scaled_dot_product_attention", nan_for_rows_that_see_nothing)
    ours, _ = pair()
    query = inputs(4, 4, self_attention=True)[0]
    padding = torch.zeros(B, 4, dtype=torch.bool)
    padding[1] = True  # batch row 1 is all padding
    with capture(ours) if path == "explicit" else torch.enable_grad():
        out, query_grad, *weight_grads = outputs_and_grads(ours, query, key_padding_mask=padding)
    torch.testing.assert_close(out[1], ours.out_proj.bias.detach().expand(4, D))  # every head's output is 0
    assert torch.isfinite(out).all() and torch.isfinite(query_grad).all()
    assert all(torch.isfinite(g).all() for g in weight_grads)
    assert (query_grad[1] == 0).all()  # nothing of row 1 reaches its output
