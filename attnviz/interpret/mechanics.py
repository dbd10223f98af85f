"""One attention head computed by hand from its captured inputs and its weights, every intermediate kept."""
import inspect
import math
from dataclasses import dataclass

import torch

from attnviz.models.attention import MultiHeadAttention, blocked_mask
from attnviz.models.hooks import capture, forward_hooks


MECHANICS_AXES = {  # step name -> (what its rows are, what its columns are)
    "X": ("query", "d_model"), "X_kv": ("key", "d_model"), "W_Q": ("d_model", "d_k"), "W_K": ("d_model", "d_k"),
    "W_V": ("d_model", "d_k"), "Q": ("query", "d_k"), "K": ("key", "d_k"), "V": ("key", "d_k"),
    "QK^T": ("query", "key"), "scaled": ("query", "key"), "masked": ("query", "key"), "weights": ("query", "key"),
    "Z": ("query", "d_k"), "concat": ("query", "d_model"), "W_O": ("d_model", "d_model"),
    "output": ("query", "d_model"),
}


@dataclass
class HeadMechanics:
    steps: dict  # step name (see MECHANICS_FORMULAS) -> 2-D tensor, in computing order
    weights_error: float  # max |step-by-step weights - what hook_pattern captured| for this head
    output_error: float  # max |step-by-step output - the attention module's own output|


@torch.no_grad()
def head_mechanics(model, run, module, head, row=0):
    """Recompute one head of one attention module by hand, from its captured inputs and its weights.

    `run()` makes one full forward pass (e.g. `lambda: model(src, tgt_in)`); batch row `row` is taken.
    The result holds every intermediate matrix and how far the hand computation is from what the
    model itself produced (both should be ~1e-6).
    """
    attention = dict(model.named_modules()).get(module)
    if not isinstance(attention, MultiHeadAttention):
        raise ValueError(f"{module!r} is not a multi-head attention module of this model")
    if not 0 <= head < attention.n_heads:
        raise ValueError(f"head {head} does not exist; {module} has heads 0..{attention.n_heads - 1}")
    seen = {}

    def record(m, args, kwargs, output):
        seen.update(inspect.signature(m.forward).bind(*args, **kwargs).arguments, output=output)

    with forward_hooks([(attention, record)], with_kwargs=True), capture(model, [f"{module}.hook_pattern"]) as cache:
        run()
    if not seen:
        raise ValueError(f"running the model did not use {module}")
    if seen.get("cache") is not None:
        raise ValueError("head_mechanics needs a full forward pass, not a cached decoding step")
    x, x_kv, values = seen["query"][row], seen["key"][row], seen["value"][row]  # (Tq, D), (Tk, D), (Tk, D)
    blocked = blocked_mask(seen.get("attn_mask"), seen.get("key_padding_mask"))  # (B|1, 1, Tq|1, Tk) or None
    blocked = torch.zeros(x.shape[0], x_kv.shape[0], dtype=torch.bool, device=x.device) if blocked is None \
        else blocked[min(row, blocked.shape[0] - 1), 0].expand(x.shape[0], x_kv.shape[0])  # (Tq, Tk)
    d_k = attention.d_head

    def project(linear, inputs, h):
        rows = slice(h * d_k, (h + 1) * d_k)
        weight = linear.weight[rows].T  # (D, d_k)
        return weight, inputs @ weight + (0.0 if linear.bias is None else linear.bias[rows])  # (T, d_k)

    def head_steps(h):
        W_Q, Q = project(attention.q_proj, x, h)
        W_K, K = project(attention.k_proj, x_kv, h)
        W_V, V = project(attention.v_proj, values, h)
        scores = Q @ K.T  # (Tq, Tk)
        scaled = scores / math.sqrt(d_k)
        masked = scaled.masked_fill(blocked, float("-inf"))
        weights = masked.softmax(-1)  # (Tq, Tk)
        steps = dict(X=x, X_kv=x_kv, W_Q=W_Q, W_K=W_K, W_V=W_V, Q=Q, K=K, V=V)
        if seen["key"] is seen["query"]:
            del steps["X_kv"]  # self-attention: keys and values come from X itself
        return steps | {"QK^T": scores, "scaled": scaled, "masked": masked, "weights": weights,
                        "Z": weights @ V}  # Z: (Tq, d_k)

    steps = head_steps(head)
    concat = torch.cat([head_steps(h)["Z"] for h in range(attention.n_heads)], dim=-1)  # (Tq, D)
    W_O = attention.out_proj.weight.T  # (D, D)
    output = concat @ W_O + (0.0 if attention.out_proj.bias is None else attention.out_proj.bias)  # (Tq, D)
    steps |= dict(concat=concat, W_O=W_O, output=output)
    captured = cache[f"{module}.hook_pattern"][row, head]  # (Tq, Tk)
    return HeadMechanics(steps, (steps["weights"] - captured).abs().max().item(),
                         (output - seen["output"][row]).abs().max().item())
