"""Why attention divides by √d_k. dot_product_stats(d_ks, n=500, generator=None, n_keys=16, seed=0) -> DataFrame
for random Gaussian q and k; model_dot_product_stats(model, src, tgt_in) -> DataFrame for a model's own queries and
keys.

For q and k with independent N(0, 1) entries, q·k = sum_{m=1..d_k} q_m k_m is a sum of d_k products of mean 0 and
variance 1, so Var(q·k) = d_k (Vaswani et al. 2017, footnote 4): the scores spread like √d_k. A softmax over scores
that far apart puts nearly all weight on one key, and its Jacobian

    d softmax(s)_i / d s_j = p_i (δ_ij - p_j)

goes to zero with it: the attention stops learning. Dividing the scores by √d_k brings their variance back to 1 for
every d_k, so the softmax's entropy and its largest gradient stay where they are. Per row of scores we measure the
entropy -sum_j p_j log p_j (nats) and the largest |Jacobian entry| (which is max_i p_i (1 - p_i)), and average.
"""
import math

import pandas as pd
import torch

from attnviz.interpret.mechanics import head_mechanics
from attnviz.interpret.patterns import attention_heads


def softmax_stats(scores):
    """scores (R, K), -inf where blocked -> (mean entropy in nats, mean largest |Jacobian entry|) over the rows that
    see at least one key."""
    p = scores[scores.isfinite().any(-1)].double().softmax(-1)  # (R, K)
    entropy = -(p * p.clamp(min=1e-300).log()).sum(-1)  # (R,) a blocked key (p = 0) adds nothing
    jacobian = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]  # (R, K, K) d p_i / d s_j
    return entropy.mean().item(), jacobian.abs().amax(dim=(1, 2)).mean().item()


def stats_row(scores, d_k):
    """The measurements of one set of scores (R, K) (-inf where blocked), raw and divided by √d_k."""
    finite = scores[scores.isfinite()].double()
    raw_entropy, raw_gradient = softmax_stats(scores)
    scaled_entropy, scaled_gradient = softmax_stats(scores / math.sqrt(d_k))
    return {"d_k": d_k, "variance": finite.var().item(), "scaled variance": (finite / math.sqrt(d_k)).var().item(),
            "entropy": raw_entropy, "scaled entropy": scaled_entropy,
            "max gradient": raw_gradient, "scaled max gradient": scaled_gradient}


def gaussian_scores(d_k, n, n_keys, generator, block=64):
    """(n, n_keys) scores q·k: each of `n` queries q ~ N(0, I) against its own `n_keys` keys k ~ N(0, I), drawn
    `block` queries at a time, so that a large d_k takes a few MB, not hundreds."""
    scores = []
    for start in range(0, n, block):
        rows = min(block, n - start)
        q = torch.randn(rows, d_k, 1, generator=generator, dtype=torch.float64)  # (rows, d_k, 1)
        k = torch.randn(rows, n_keys, d_k, generator=generator, dtype=torch.float64)  # (rows, K, d_k)
        scores.append((k @ q)[..., 0])  # (rows, K)
    return torch.cat(scores)  # (n, K)


def dot_product_stats(d_ks, n=500, generator=None, n_keys=16, seed=0):
    """One row per d_k of `gaussian_scores` drawn from `generator` (a torch.Generator; None: a fresh one seeded with
    `seed`). Columns: d_k, variance of q·k and of q·k/√d_k, the closed form d_k ("expected variance"), softmax entropy
    and largest gradient, raw and scaled."""
    generator = generator or torch.Generator().manual_seed(seed)
    return pd.DataFrame([{**stats_row(gaussian_scores(d_k, n, n_keys, generator), d_k),
                          "expected variance": float(d_k)} for d_k in d_ks])


def model_dot_product_stats(model, src, tgt_in):
    """One row per attention head of a Transformer on one input (src (1, S), or None for a language model; tgt_in
    (1, T)): `module`, `head`, d_k, the variance of its q·k over the query-key pairs it may use, softmax entropy and
    largest gradient with the scaling the model uses and without it. Queries and keys are the ones the model itself
    computed (`head_mechanics`, checked there against the model's hooks)."""
    device = next(model.parameters()).device
    src = None if src is None else src.to(device)
    run = lambda: model.logits(src, tgt_in.to(device))
    rows = []
    for kind, layer, module, n_heads in attention_heads(model):
        for head in range(n_heads):
            steps = head_mechanics(model, run, module, head).steps
            scores = steps["QK^T"].masked_fill(steps["masked"].isinf(), float("-inf"))  # (Tq, Tk)
            rows.append({"module": module, "kind": kind, "layer": layer, "head": head,
                         **stats_row(scores, steps["Q"].shape[-1])})
    return pd.DataFrame(rows)
