"""Statistics of every attention head: entropy, distance, previous/next token, sinks, largest weight.

What each statistic means (STATS) is English, marked for the catalog: a page shows it as `_(STATS[name])`.
"""
import math

import pandas as pd
import torch

from attnviz.i18n import N_
from attnviz.interpret.patterns import KINDS, parse_pattern_name


STATS = {
    "entropy": N_("Entropy of each query's attention row in nats (0: all weight on one key; log n: uniform "
                  "over n keys), averaged over real query rows."),
    "normalised_entropy": N_("Entropy divided by log(number of keys the query may see): 0 = one key, 1 = uniform."),
    "distance": N_("Mean |query position - key position|, weighted by attention: how far back (or ahead) a head "
                   "looks."),
    "previous_token": N_("Mean weight on the key just before the query; 1 for a pure previous-token head."),
    "next_token": N_("Mean weight on the key just after the query (always 0 under a causal mask)."),
    "sink": N_("Mean total weight on special tokens (BOS, EOS, padding): where heads 'park' attention "
               "when they have nothing to do."),
    "max_weight": N_("Mean of each query's largest weight; 1 if every query looks at exactly one key."),
}


def key_mask(keys, Tk, device=None):
    """A (B|1, Tk) bool mask from a bool tensor, or from a list of key indices (negative ones count from the end)."""
    if isinstance(keys, torch.Tensor) and keys.dtype == torch.bool:
        return keys.to(device).reshape(-1, Tk)
    mask = torch.zeros(1, Tk, dtype=torch.bool, device=device)  # (1, Tk)
    mask[0, list(keys)] = True
    return mask


def row_mean(values, rows, valid=None):
    """Mean of (B, H, Tq) values over the counted query rows: rows (B, 1, Tq) float, valid (Tq,) or (B, 1, Tq) bool.
    NaN for a head when no row counts."""
    weight = rows if valid is None else rows * valid
    total = weight.sum((0, 2))  # (1,)
    mean = (values * weight).sum((0, 2)) / total.clamp_min(1e-12)  # (H,)
    return torch.where(total > 0, mean, torch.full_like(mean, math.nan))


def query_rows(pattern, query_padding_mask):
    B, _, Tq, _ = pattern.shape
    if query_padding_mask is None:
        return torch.ones(B, 1, Tq, device=pattern.device)
    return (~query_padding_mask.to(pattern.device)).float()[:, None, :]  # (B, 1, Tq)


def as_pattern(pattern):
    pattern = torch.as_tensor(pattern).detach().float()
    if pattern.dim() == 3:
        pattern = pattern[None]
    if pattern.dim() != 4:
        raise ValueError(f"an attention pattern has shape (batch, heads, queries, keys); got {tuple(pattern.shape)}")
    return pattern  # (B, H, Tq, Tk)


def attention_to(pattern, keys, query_padding_mask=None):
    """Per head, the mean total weight real queries put on chosen keys (bool (B|1, Tk) mask or key indices). (H,)"""
    pattern = as_pattern(pattern)
    keys = key_mask(keys, pattern.shape[-1], pattern.device)  # (B|1, Tk)
    on_keys = (pattern * keys[:, None, None, :]).sum(-1)  # (B, H, Tq)
    return row_mean(on_keys, query_rows(pattern, query_padding_mask))


def head_stats(pattern, query_padding_mask=None, key_padding_mask=None, causal=False, offset=0, sinks=None):
    """Statistics of every head of a (B, H, Tq, Tk) pattern: {name: (H,) tensor}, names as in `STATS`.

    Query row q sits at position q + offset among the keys (for a causal decoder attending to a cached
    prefix, offset = Tk - Tq; otherwise 0). Padding query rows (`query_padding_mask` (B, Tq), True = pad)
    are left out of every mean. `key_padding_mask` (B, Tk) and `causal` say which keys a query could see,
    which the normalised entropy needs. `sinks`: the special keys, as a bool (B|1, Tk) mask or key indices;
    None gives NaN for "sink".
    """
    pattern = as_pattern(pattern)  # (B, H, Tq, Tk)
    B, H, Tq, Tk = pattern.shape
    rows = query_rows(pattern, query_padding_mask)  # (B, 1, Tq)
    q_pos = torch.arange(Tq, device=pattern.device)[:, None] + offset  # (Tq, 1)
    k_pos = torch.arange(Tk, device=pattern.device)[None, :]  # (1, Tk)

    visible = torch.ones(B, 1, Tq, Tk, dtype=torch.bool, device=pattern.device)  # (B, 1, Tq, Tk) keys a query may see
    if key_padding_mask is not None:
        visible = visible & ~key_padding_mask.to(pattern.device)[:, None, None, :]
    if causal:
        visible = visible & (k_pos <= q_pos)
    n_visible = visible.sum(-1)  # (B, 1, Tq)

    entropy = -torch.special.xlogy(pattern, pattern).sum(-1)  # (B, H, Tq)
    previous = (k_pos == q_pos - 1).float()  # (Tq, Tk) one-hot on the previous position, if it exists
    following = (k_pos == q_pos + 1).float()  # (Tq, Tk)
    real_keys = torch.ones(1, 1, 1, Tk, dtype=torch.bool, device=pattern.device) if key_padding_mask is None \
        else ~key_padding_mask.to(pattern.device)[:, None, None, :]  # (B|1, 1, 1, Tk): a pad is nobody's next token
    return {
        "entropy": row_mean(entropy, rows),
        "normalised_entropy": row_mean(entropy / n_visible.clamp_min(2).log(), rows, n_visible >= 2),
        "distance": row_mean((pattern * (q_pos - k_pos).abs()).sum(-1), rows),
        "previous_token": row_mean((pattern * previous).sum(-1), rows, (previous.bool() & real_keys).any(-1)),
        "next_token": row_mean((pattern * following).sum(-1), rows, (following.bool() & real_keys).any(-1)),
        "sink": torch.full((H,), math.nan) if sinks is None else attention_to(pattern, sinks, query_padding_mask),
        "max_weight": row_mean(pattern.amax(-1), rows),
    }


def head_stats_table(cache, src=None, tgt=None, pad_id=0, sink_ids=(0, 1, 2)):
    """One row per head of every captured pattern: kind, layer, head, module, and the `STATS` columns.

    `src` (B, S) and `tgt` (B, T) are the token ids of the captured forward pass (for an LM, `tgt` is
    its input). They mark padding rows and the sink tokens (`sink_ids`: PAD, BOS, EOS by default);
    without them every row counts and "sink" is NaN. During incremental decoding pass all tokens so
    far as `tgt`: the last Tq of them are the queries.
    """
    records = []
    for name, pattern in cache.items():
        if not name.endswith("hook_pattern"):
            continue
        kind, layer, module = parse_pattern_name(name)
        Tq, Tk = pattern.shape[-2:]
        queries = src if kind == "encoder self" else tgt
        keys = tgt if kind == "decoder self" else src
        if queries is not None:
            queries = queries[:, -Tq:]
        for tokens, n, what in ((queries, Tq, "queries"), (keys, Tk, "keys")):
            if tokens is not None and tokens.shape != (pattern.shape[0], n):
                raise ValueError(f"{name}: {what} have {n} positions in a batch of {pattern.shape[0]}, "
                                 f"but the token ids given for them have shape {tuple(tokens.shape)}")
        stats = head_stats(
            pattern,
            query_padding_mask=None if queries is None else queries == pad_id,
            key_padding_mask=None if keys is None else keys == pad_id,
            causal=kind == "decoder self",
            offset=Tk - Tq if kind == "decoder self" else 0,
            sinks=None if keys is None else torch.isin(keys, torch.tensor(sink_ids, device=keys.device)))
        for head in range(pattern.shape[1]):
            records.append(dict(kind=kind, layer=layer, head=head, module=module,
                                **{stat: float(values[head]) for stat, values in stats.items()}))
    table = pd.DataFrame.from_records(records, columns=["kind", "layer", "head", "module", *STATS])
    order = table["kind"].map(KINDS.index)
    return table.assign(_order=order).sort_values(["_order", "layer", "head"]).drop(columns="_order") \
        .reset_index(drop=True)


def stat_matrix(table, kind, stat):
    """From a `head_stats_table`, one statistic of one kind as an (L, H) array (for `figures.stat_heatmap`)."""
    rows = table[table["kind"] == kind]
    if rows.empty:
        raise ValueError(f"the table has no {kind} attention")
    return rows.pivot(index="layer", columns="head", values=stat).to_numpy()
