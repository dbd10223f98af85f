"""What the attention pages compute: head statistics, attention rollout, head ablation, positional helpers.

Patterns are (B, H, Tq, Tk) tensors as `attnviz.capture` returns them, named like
`decoder.layers.1.cross_attn.hook_pattern`; the kind ("encoder self", "decoder self", "cross") and
the layer are read from that name.
"""
import inspect
import io
import math
import re
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from attnviz.attention import MultiHeadAttention, blocked_mask
from attnviz.decoding import greedy
from attnviz.hooks import ablate, capture, forward_hooks, pattern_names
from attnviz.positional import PositionalEncoding, sinusoidal_frequencies

KINDS = ("encoder self", "decoder self", "cross")

STATS = {
    "entropy": "Entropy of each query's attention row in nats (0: all weight on one key; log n: uniform "
               "over n keys), averaged over real query rows.",
    "normalised_entropy": "Entropy divided by log(number of keys the query may see): 0 = one key, 1 = uniform.",
    "distance": "Mean |query position - key position|, weighted by attention: how far back (or ahead) a head looks.",
    "previous_token": "Mean weight on the key just before the query; 1 for a pure previous-token head.",
    "next_token": "Mean weight on the key just after the query (always 0 under a causal mask).",
    "sink": "Mean total weight on special tokens (BOS, EOS, padding): where heads 'park' attention "
            "when they have nothing to do.",
    "max_weight": "Mean of each query's largest weight; 1 if every query looks at exactly one key.",
}

ROLLOUT_CAPTION = (
    "Attention rollout (Abnar & Zuidema, 2020) multiplies the layers' head-averaged attention, each mixed "
    "half-and-half with the identity for the residual connection, to estimate how much each output position "
    "draws on each input token. It is an estimate: it ignores the values, the output projection and the MLPs, "
    "assumes information mixes linearly and equally across heads, and covers one self-attention stack "
    "(cross-attention is not included). Read it as a hint, not as an explanation."
)

PATTERN_NAME = re.compile(r"^(encoder|decoder)\.(?:layers\.(\d+)\.)?(self_attn|cross_attn|attention)\.hook_pattern$")


def parse_pattern_name(name):
    """`decoder.layers.1.cross_attn.hook_pattern` -> ("cross", 1, "decoder.layers.1.cross_attn").

    The RNN's `decoder.attention.hook_pattern` is cross-attention of layer 0.
    """
    match = PATTERN_NAME.match(name)
    if match is None:
        raise ValueError(f"{name!r} is not an attention-pattern hook name like 'encoder.layers.0.self_attn.hook_pattern'")
    side, layer, module = match.groups()
    kind = f"{side} self" if module == "self_attn" else "cross"
    return kind, int(layer or 0), name.removesuffix(".hook_pattern")


def patterns_of(cache, kind, row=0):
    """All layers of one kind for batch row `row`, stacked: (L, H, Tq, Tk)."""
    found = {}
    for name, pattern in cache.items():
        if name.endswith("hook_pattern") and parse_pattern_name(name)[0] == kind:
            found[parse_pattern_name(name)[1]] = pattern[row]  # (H, Tq, Tk)
    if not found:
        kinds = sorted({parse_pattern_name(n)[0] for n in cache if n.endswith("hook_pattern")})
        raise ValueError(f"this capture has no {kind} attention; it has: {', '.join(kinds) or 'none'}")
    return torch.stack([found[layer] for layer in sorted(found)])  # (L, H, Tq, Tk)


# ---------------------------------------------------------------------------------------------------------
# Per-head statistics

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


def patterns_table(cache, src_labels=None, tgt_labels=None, row=0):
    """Every captured weight of batch row `row` in long form (for a CSV download): name, kind, layer, head,
    query, query_token, key, key_token, weight. Token labels are optional, as in `head_stats_table`."""
    frames = []
    for name, pattern in cache.items():
        if not name.endswith("hook_pattern"):
            continue
        kind, layer, _ = parse_pattern_name(name)
        H, Tq, Tk = pattern.shape[1:]
        query_labels = src_labels if kind == "encoder self" else tgt_labels
        key_labels = tgt_labels if kind == "decoder self" else src_labels
        head, query, key = np.meshgrid(np.arange(H), np.arange(Tq), np.arange(Tk), indexing="ij")  # (H, Tq, Tk)
        frame = pd.DataFrame(dict(name=name, kind=kind, layer=layer, head=head.ravel(), query=query.ravel(),
                                  key=key.ravel(), weight=pattern[row].float().cpu().numpy().ravel()))
        if query_labels is not None:
            frame.insert(5, "query_token", np.asarray(list(query_labels)[-Tq:], dtype=object)[frame["query"]])
        if key_labels is not None:
            frame.insert(len(frame.columns) - 1, "key_token", np.asarray(list(key_labels), dtype=object)[frame["key"]])
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def npz_bytes(cache):
    """The captured tensors as a compressed NumPy .npz file (bytes), keyed by hook name."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{name: tensor.float().cpu().numpy() for name, tensor in cache.items()})
    return buffer.getvalue()


def stat_matrix(table, kind, stat):
    """From a `head_stats_table`, one statistic of one kind as an (L, H) array (for `figures.stat_heatmap`)."""
    rows = table[table["kind"] == kind]
    if rows.empty:
        raise ValueError(f"the table has no {kind} attention")
    return rows.pivot(index="layer", columns="head", values=stat).to_numpy()


# ---------------------------------------------------------------------------------------------------------
# Attention rollout

def attention_rollout(patterns):
    """Rollout through a self-attention stack: (L, ..., H, T, T) -> (L, ..., T, T); see ROLLOUT_CAPTION.

    Per layer A_hat = 0.5 * mean over heads(A) + 0.5 * I, rows renormalised; entry l of the result is
    A_hat_l @ ... @ A_hat_0, how much position i after layer l draws on input token j (rows sum to 1).
    """
    patterns = torch.stack(list(patterns)) if isinstance(patterns, (list, tuple)) else torch.as_tensor(patterns)
    patterns = patterns.detach().float()
    if patterns.dim() < 4 or patterns.shape[-1] != patterns.shape[-2]:
        raise ValueError("rollout needs square self-attention patterns shaped (layers, heads, T, T); "
                         f"got {tuple(patterns.shape)} (cross-attention cannot be rolled out)")
    T = patterns.shape[-1]
    mixed = 0.5 * patterns.mean(-3) + 0.5 * torch.eye(T, device=patterns.device)  # (L, ..., T, T)
    mixed = mixed / mixed.sum(-1, keepdim=True)
    rollout, result = [], None
    for layer in mixed:
        result = layer if result is None else layer @ result  # (..., T, T)
        rollout.append(result)
    return torch.stack(rollout)  # (L, ..., T, T)


# ---------------------------------------------------------------------------------------------------------
# Head ablation

@dataclass
class AblationEffect:
    """Loss and token accuracy on one batch with all heads on (before) and the chosen heads off (after),
    and the next-token probabilities at every target position, (B, T, V), before and after."""
    loss_before: float
    loss_after: float
    accuracy_before: float
    accuracy_after: float
    tokens: int
    probs_before: torch.Tensor
    probs_after: torch.Tensor

    @property
    def loss_change(self):
        return self.loss_after - self.loss_before

    @property
    def accuracy_change(self):
        return self.accuracy_after - self.accuracy_before


def unpack_batch(batch, model):
    """(src or None, tgt_in, tgt_out) on the model's device, from a Batch or a tuple."""
    src, tgt_in, tgt_out = batch if isinstance(batch, (tuple, list)) else (batch.src, batch.tgt_in, batch.tgt_out)
    if model.has_encoder and src is None:
        raise ValueError("this model has an encoder: the batch needs source tokens")
    device = next(model.parameters()).device
    return None if src is None else src.to(device), tgt_in.to(device), tgt_out.to(device)


@torch.no_grad()
def score(model, src, tgt_in, tgt_out):
    """(mean loss, token accuracy, number of target tokens, probabilities (B, T, V)); padding targets ignored."""
    logits = (model(src, tgt_in) if model.has_encoder else model(tgt_in)).float()  # (B, T, V)
    real = tgt_out != model.config.pad_id  # (B, T)
    tokens = int(real.sum())
    if tokens == 0:
        raise ValueError("the batch has no target tokens (all padding)")
    loss = F.cross_entropy(logits[real], tgt_out[real], reduction="sum").item() / tokens
    accuracy = (logits.argmax(-1) == tgt_out)[real].float().mean().item()
    return loss, accuracy, tokens, logits.softmax(-1)


def intervention_effect(model, batch, intervention):
    """Score one batch as the model is (before) and inside `intervention()`, a context manager (after)."""
    src, tgt_in, tgt_out = unpack_batch(batch, model)
    loss_before, accuracy_before, tokens, probs_before = score(model, src, tgt_in, tgt_out)
    with intervention():
        loss_after, accuracy_after, _, probs_after = score(model, src, tgt_in, tgt_out)
    return AblationEffect(loss_before, loss_after, accuracy_before, accuracy_after, tokens, probs_before, probs_after)


def ablation_effect(model, batch, heads):
    """What switching off `heads`, a set of (attention module name, head index), changes on one batch.

    `batch`: a tasks.Batch or a tuple (src or None, tgt_in, tgt_out). The model is used as it is
    (put it in eval mode first) and is not changed.
    """
    return intervention_effect(model, batch, lambda: ablate(model, set(heads)))


def summarise(effects):
    """Token-weighted loss and accuracy before/after over the effects of many batches (a test set)."""
    if not effects:
        raise ValueError("no batches to evaluate on")
    tokens = sum(e.tokens for e in effects)
    mean = lambda field: sum(getattr(e, field) * e.tokens for e in effects) / tokens
    summary = {field: mean(field) for field in ("loss_before", "loss_after", "accuracy_before", "accuracy_after")}
    return summary | dict(loss_change=summary["loss_after"] - summary["loss_before"],
                          accuracy_change=summary["accuracy_after"] - summary["accuracy_before"], tokens=tokens)


def ablation_summary(model, batches, heads):
    """`summarise` of switching off `heads` on every batch."""
    return summarise([ablation_effect(model, batch, heads) for batch in batches])


# ---------------------------------------------------------------------------------------------------------
# One head, step by step

MECHANICS_FORMULAS = {  # step name -> what it is, in LaTeX; `head_mechanics` fills them in this order
    "X": r"X \in \mathbb{R}^{T_q \times d_{model}} \text{ (the attention layer's input)}",
    "X_kv": r"X_{kv} \in \mathbb{R}^{T_k \times d_{model}} \text{ (what the queries look at)}",
    "W_Q": r"W^Q_h \in \mathbb{R}^{d_{model} \times d_k}",
    "W_K": r"W^K_h \in \mathbb{R}^{d_{model} \times d_k}",
    "W_V": r"W^V_h \in \mathbb{R}^{d_{model} \times d_k}",
    "Q": r"Q_h = X W^Q_h + b^Q_h",
    "K": r"K_h = X_{kv} W^K_h + b^K_h",
    "V": r"V_h = X_{kv} W^V_h + b^V_h",
    "QK^T": r"S_h = Q_h K_h^\top",
    "scaled": r"S_h / \sqrt{d_k}",
    "masked": r"S_h / \sqrt{d_k} + M, \quad M_{ij} = -\infty \text{ where key } j \text{ is blocked}",
    "weights": r"A_h = \mathrm{softmax}\left(S_h / \sqrt{d_k} + M\right) \text{ (row by row)}",
    "Z": r"Z_h = A_h V_h",
    "concat": r"Z = [Z_1 \; Z_2 \; \cdots \; Z_H]",
    "W_O": r"W^O \in \mathbb{R}^{d_{model} \times d_{model}}",
    "output": r"\mathrm{MultiHead}(X) = Z W^O + b^O",
}


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


def attention_heads(model):
    """[(kind, layer, module name, number of heads)] for every attention module of the model."""
    modules = dict(model.named_modules())
    heads = []
    for name in pattern_names(model):
        kind, layer, module = parse_pattern_name(name)
        heads.append((kind, layer, module, getattr(modules[module], "n_heads", 1)))
    return heads


def single_head_effects(model, batch):
    """Switch off each head alone: a table of kind, layer, head, module, loss_change, accuracy_change."""
    src, tgt_in, tgt_out = unpack_batch(batch, model)
    loss, accuracy, _, _ = score(model, src, tgt_in, tgt_out)
    records = []
    for kind, layer, module, n_heads in attention_heads(model):
        for head in range(n_heads):
            with ablate(model, {(module, head)}):
                loss_off, accuracy_off, _, _ = score(model, src, tgt_in, tgt_out)
            records.append(dict(kind=kind, layer=layer, head=head, module=module,
                                loss_change=loss_off - loss, accuracy_change=accuracy_off - accuracy))
    return pd.DataFrame.from_records(records, columns=["kind", "layer", "head", "module", "loss_change",
                                                       "accuracy_change"])


# ---------------------------------------------------------------------------------------------------------
# Positional encodings

def shift_matrix(d_model, k):
    """M_k (D, D) with PE(pos + k) = M_k @ PE(pos) for the sinusoidal encoding, for every pos.

    From sin(w(p+k)) = sin(wp)cos(wk) + cos(wp)sin(wk) and cos(w(p+k)) = cos(wp)cos(wk) - sin(wp)sin(wk):
    each (sin, cos) pair of dimensions 2i, 2i+1 is rotated by the angle k * w_i, w_i = 10000^(-2i/D).
    M_k does not depend on pos, which is why a model can learn to attend by relative offset.
    """
    if d_model % 2:
        raise ValueError(f"d_model={d_model} is odd: the last sine has no cosine partner; use an even d_model")
    frequency = sinusoidal_frequencies(d_model)  # (D/2,)
    cos, sin = torch.cos(k * frequency), torch.sin(k * frequency)  # (D/2,)
    even = torch.arange(0, d_model, 2)
    matrix = torch.zeros(d_model, d_model, dtype=torch.float64)  # (D, D)
    matrix[even, even], matrix[even, even + 1] = cos, sin
    matrix[even + 1, even], matrix[even + 1, even + 1] = -sin, cos
    return matrix.float()


@contextmanager
def positional_ablation(model, mode, seed=0):
    """Inside the block the model's positional encodings are removed (`"remove"`) or handed out in a
    shuffled order (`"shuffle"`: each forward pass gives its tokens a random permutation of their own
    positions). Done with forward hooks: the model itself is not changed."""
    if mode not in ("remove", "shuffle"):
        raise ValueError(f"mode={mode!r}: choose 'remove' or 'shuffle'")
    encodings = [m for m in model.modules() if isinstance(m, PositionalEncoding) and m.table is not None]
    if not encodings:
        raise ValueError("this model has no positional encoding to remove or shuffle")
    generator = torch.Generator().manual_seed(seed)

    def hook(module, args, kwargs, output):
        x = args[0]  # (B, T, D) embeddings before the encoding was added
        if mode == "remove":
            return x
        offset = kwargs.get("offset", args[1] if len(args) > 1 else 0)
        order = torch.randperm(x.shape[1], generator=generator).to(x.device) + offset  # (T,)
        return x + module.table[order]

    with forward_hooks([(m, hook) for m in encodings], with_kwargs=True):
        yield


def positional_ablation_summary(model, batches, mode, seed=0):
    """`summarise` of removing or shuffling positional information on every batch (a test set)."""
    return summarise([intervention_effect(model, batch, lambda: positional_ablation(model, mode, seed))
                      for batch in batches])


def positional_similarity(table, cosine=False):
    """(T, T) dot products (or cosine similarities) between the positional encodings of every two positions."""
    table = torch.as_tensor(table).detach().float()  # (T, D)
    if cosine:
        table = F.normalize(table, dim=-1)
    return table @ table.T  # (T, T)


def shift_check(table, k):
    """(M_k, max |PE(pos + k) - M_k PE(pos)| over every pos of a (T, D) table): the shift demonstration.

    Near 0 for a sinusoidal table; a learned table has no such M_k, and the error shows it."""
    table = torch.as_tensor(table).detach().float()  # (T, D)
    if not 0 < k < table.shape[0]:
        raise ValueError(f"k={k} must be between 1 and {table.shape[0] - 1} (the table has {table.shape[0]} positions)")
    matrix = shift_matrix(table.shape[1], k)  # (D, D)
    predicted = table[:-k] @ matrix.T  # (T - k, D): row pos is M_k PE(pos)
    return matrix, (predicted - table[k:]).abs().max().item()


def positional_tables(model):
    """{module name: (kind, (max_len, D) table)} of every positional encoding the model adds; {} for none."""
    return {name: (module.kind, module.table.detach().float().cpu()) for name, module in model.named_modules()
            if isinstance(module, PositionalEncoding) and module.table is not None}


# ---------------------------------------------------------------------------------------------------------
# A user's input, run through a model

MAX_SHOWN_TOKENS = 48  # longer inputs are cut: a heatmap of more tokens per side is unreadable
LM_CONTINUATION = 16  # tokens a language model adds to a prompt


@dataclass
class InputRun:
    """One input, its greedy output, and every attention pattern of the full forward pass over both.

    The decoder reads `tgt_in` = context + output without its last token and predicts `tgt_out`: row t of
    a decoder pattern is the position that reads tgt_in[t] and predicts tgt_out[t].
    """
    text: str  # the input as used (cut to fit, if it was too long)
    ids: torch.Tensor  # (1, S) what decoding started from: source tokens + EOS, or BOS + prompt for an LM
    max_new_tokens: int  # the decoding limit used
    src: torch.Tensor | None  # (1, S) the encoder's input (= ids); None for a language model
    tgt_in: torch.Tensor  # (1, T)
    tgt_out: torch.Tensor  # (1, T)
    src_labels: list | None
    tgt_labels: list  # labels of tgt_in
    output: str  # the greedy output, decoded
    cache: dict  # {hook name: (1, H, Tq, Tk)}
    notes: list  # what was changed about the input, for the user

    def labels(self, kind):
        """(query labels, key labels) of one kind of attention."""
        return {"encoder self": (self.src_labels, self.src_labels), "decoder self": (self.tgt_labels, self.tgt_labels),
                "cross": (self.tgt_labels, self.src_labels)}[kind]

    @property
    def kinds(self):
        """The kinds of attention captured, in the order of KINDS (an RNN without attention has none)."""
        return [kind for kind in KINDS if any(parse_pattern_name(name)[0] == kind for name in self.cache)]

    def blocked(self, kind):
        """(Tq, Tk) bool, True where a query may not look (the future, under the causal mask), or None."""
        if kind != "decoder self":
            return None
        T = self.tgt_in.shape[1]
        return torch.ones(T, T, dtype=torch.bool).triu(1)  # (T, T)

    def forward(self, model):
        """One full forward pass over this input (what `head_mechanics` needs as `run`)."""
        return model(self.src, self.tgt_in) if model.has_encoder else model(self.tgt_in)


def fit_input(task, text, max_tokens):
    """(the longest prefix of `text` that encodes to at most `max_tokens` tokens, notes for the user)."""
    n = len(task.tokenizer.encode(text))
    if n <= max_tokens:
        return text, []
    low, high = 0, len(text)  # bisect on characters: the prefix of `low` characters fits, of `high` does not
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if len(task.tokenizer.encode(text[:middle])) <= max_tokens else (low, middle)
    return text[:low], [f"The input is {n} tokens long; only its first {max_tokens} are used "
                        f"(\u201c{text[:low]}\u201d): more than that per side makes unreadable heatmaps."]


@torch.no_grad()
def run_input(model, task, text, max_tokens=MAX_SHOWN_TOKENS, max_new_tokens=None):
    """Encode a user's input (cut to `max_tokens`), decode it greedily, and capture the attention over both.

    A ValueError says what is wrong with the input (empty, or nothing the model can read).
    """
    if not text.strip() and task.kind == "seq2seq":
        raise ValueError("the input is empty: type something for the model to transform")
    notes = [] if text.strip() else ["The prompt is empty: the model writes from <bos> alone."]
    limit = min(max_tokens, model.config.max_len - 2)  # room for EOS / BOS and at least one output token
    text, cut = fit_input(task, text, limit)
    notes += cut
    unknown = task.unknown_characters(text)
    if unknown:
        notes.append(f"The model's tokenizer does not know {', '.join(map(repr, unknown))}: it reads "
                     f"{'it' if len(unknown) == 1 else 'them'} as <unk>, so expect a strange output.")
    ids = task.encode_source(text, limit + 1)  # (1, S): seq2seq tokens + EOS; lm BOS + tokens
    room = model.config.max_len - (1 if model.has_encoder else ids.shape[1])
    if max_new_tokens is None:  # an output about as long as the task's, or a short continuation for an LM
        max_new_tokens = LM_CONTINUATION if task.kind == "lm" else max(task.max_tgt_len, 2 * ids.shape[1]) + 2
    max_new_tokens = min(room, max_new_tokens)
    decoded = greedy(model, task.tokenizer, ids, max_new_tokens=max_new_tokens, trace=False)
    sequence = torch.tensor([decoded.sequence(0)])  # (1, T + 1) context + output
    src = ids if model.has_encoder else None
    tgt_in, tgt_out = sequence[:, :-1], sequence[:, 1:]  # (1, T)
    labels = task.tokenizer.labels
    run = InputRun(text, ids, max_new_tokens, src, tgt_in, tgt_out, None if src is None else labels(src[0]),
                   labels(tgt_in[0]), task.tokenizer.decode(decoded.ids(0)), {}, notes)
    with capture(model) as run.cache:
        run.forward(model)
    return run


@dataclass
class InputAblation:
    """What switching heads off does to one input: the greedy output, and the probability of each token of
    the original output (teacher-forced, so the positions line up), before and after."""
    output_after: str
    probs_before: torch.Tensor  # (T,) probability of tgt_out[t] at position t, all heads on
    probs_after: torch.Tensor  # (T,) the same with the heads off


@torch.no_grad()
def ablate_input(model, task, run, heads):
    """Switch off `heads` (a set of (attention module name, head)) for one `InputRun`."""
    effect = ablation_effect(model, (run.src, run.tgt_in, run.tgt_out), heads)
    with ablate(model, set(heads)):
        decoded = greedy(model, task.tokenizer, run.ids, max_new_tokens=run.max_new_tokens, trace=False)
    chosen = run.tgt_out[0][:, None]  # (T, 1)
    return InputAblation(task.tokenizer.decode(decoded.ids(0)), effect.probs_before[0].gather(-1, chosen)[:, 0],
                         effect.probs_after[0].gather(-1, chosen)[:, 0])
