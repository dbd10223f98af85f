"""Heads that can be named: scores per head for what a head of a language model does, on probe sequences.

For a causal self-attention pattern A (B, H, T, T) over tokens x (B, T):
- previous token: mean weight from position t on t - 1.
- duplicate token: mean total weight from a token on the earlier positions that hold the same token (over the
  positions that have one).
- induction (Olsson et al., 2022, "In-context learning and induction heads"): on a random sequence repeated twice,
  x_1..x_n x_1..x_n, mean weight from the second occurrence of a token on the token that followed its first
  occurrence (from position n + j on position j + 1). An induction head copies what came next last time.
- bracket matching (code): mean weight from a closing bracket on the opening bracket it closes, and how often that
  opening bracket is the key the head weighs most.

A head attending uniformly scores at chance: the mean over the counted queries of 1 / (keys it may see).
`probe_tokens` makes the repeated random sequences; `head_type_table` scores every head of a model on them.
"""
import pandas as pd
import torch

from attnviz.data.synthetic import repeat_split
from attnviz.data.tokenizers import BOS, SPECIAL_LABELS
from attnviz.i18n import N_
from attnviz.interpret.patterns import parse_pattern_name
from attnviz.models.hooks import capture
from attnviz.training.evaluation import evaluating

HEAD_TYPES = {  # English, marked for the catalog: a page shows a meaning as `_(HEAD_TYPES[name])`
    "previous_token": N_("Weight on the token just before: the simplest head, and half of an induction circuit."),
    "duplicate_token": N_("Weight on earlier copies of the same token: the head notices a token has been seen "
                          "before."),
    "induction": N_("On a random sequence repeated twice, weight from a token's second occurrence on the token that "
                    "followed its first: the head predicts that what came next last time comes next again."),
}
BRACKETS = {")": "(", "]": "[", "}": "{"}


def previous_token_score(pattern):
    """(H,) mean weight of each query (from the second on) on the key just before it. pattern (B, H, T, T)."""
    return pattern.diagonal(offset=-1, dim1=-2, dim2=-1).mean((0, 2))  # (B, H, T - 1) -> (H,)


def duplicate_token_score(pattern, tokens):
    """(H,) mean weight a query puts on earlier keys holding its own token, over queries that have one."""
    T = tokens.shape[1]
    same = tokens[:, :, None] == tokens[:, None, :]  # (B, Tq, Tk)
    earlier = torch.ones(T, T, dtype=torch.bool, device=tokens.device).tril(-1)  # (Tq, Tk) strictly before
    duplicate = (same & earlier).float()  # (B, Tq, Tk)
    has_one = duplicate.sum(-1) > 0  # (B, Tq)
    on_duplicates = (pattern * duplicate[:, None]).sum(-1)  # (B, H, Tq)
    return (on_duplicates * has_one[:, None]).sum((0, 2)) / has_one.sum().clamp_min(1)  # (H,)


def induction_score(pattern, half, start=1):
    """(H,) mean weight from position start + half + j on start + j + 1, j = 0 .. half - 2: sequences are
    [prefix of `start` tokens] x_1..x_half x_1..x_half."""
    queries = torch.arange(start + half, start + 2 * half - 1, device=pattern.device)  # second occurrences
    keys = queries - half + 1  # the token after each first occurrence
    return pattern[:, :, queries, keys].mean((0, 2))  # (B, H, half - 1) -> (H,)


def bracket_pairs(text):
    """[(closing index, opening index)] of the matched brackets of `text`, in order of closing."""
    stack, pairs = [], []
    for i, char in enumerate(text):
        if char in BRACKETS.values():
            stack.append((char, i))
        elif char in BRACKETS and stack and stack[-1][0] == BRACKETS[char]:
            pairs.append((i, stack.pop()[1]))
        elif char in BRACKETS:
            stack.clear()  # a mismatch: what it would close is unclear
    return pairs


def bracket_score(pattern, pairs):
    """(weight, hit rate), each (H,): mean weight from each closing bracket on its opening one, and the share of
    closing brackets whose most-weighted key is that opening bracket. `pairs`: per batch row, [(query, key)]."""
    rows = [(b, q, k) for b, row in enumerate(pairs) for q, k in row]
    if not rows:
        raise ValueError("the probe text has no matched brackets")
    b, q, k = (torch.tensor(x, device=pattern.device) for x in zip(*rows))
    weights = pattern[b, :, q, :]  # (N, H, Tk)
    return weights.gather(-1, k[:, None, None].expand(-1, weights.shape[1], 1))[..., 0].mean(0), \
        (weights.argmax(-1) == k[:, None]).float().mean(0)


def probe_tokens(vocab_size, half=24, n=16, seed=0):
    """(n, 1 + 2 * half) ids: BOS, then `half` random ordinary tokens (no specials), then the same again."""
    generator = torch.Generator().manual_seed(seed)
    first = torch.randint(len(SPECIAL_LABELS), vocab_size, (n, half), generator=generator)  # (n, half)
    return torch.cat([torch.full((n, 1), BOS), first, first], dim=1)  # (n, 1 + 2 * half)


def self_attention_patterns(model, tokens):
    """{(layer, name): (B, H, T, T)} of a language model's (causal) self-attention reading `tokens`."""
    with evaluating(model), capture(model) as cache:
        model.logits(None, tokens.to(next(model.parameters()).device))
    return {parse_pattern_name(name)[1]: pattern.float().cpu() for name, pattern in cache.items()
            if parse_pattern_name(name)[0] == "decoder self"}


def head_type_table(model, half=24, n=16, seed=0):
    """One row per head of a decoder-only language model: layer, head and the `HEAD_TYPES` scores (each next to
    its chance level: a head spreading its weight evenly) on `probe_tokens`."""
    if model.config.n_encoder_layers or getattr(model.config, "encoder_only", False):
        raise ValueError("head types are scored on a decoder-only language model's self-attention")
    half = min(half, (model.config.max_len - 1) // 2)
    tokens = probe_tokens(model.config.tgt_vocab_size, half, n, seed)  # (n, T)
    uniform = torch.tril(torch.ones(tokens.shape[1], tokens.shape[1]))
    uniform = (uniform / uniform.sum(-1, keepdim=True))[None, None]  # (1, 1, T, T) the chance head
    chance = {"previous_token": previous_token_score(uniform), "duplicate_token": duplicate_token_score(uniform, tokens),
              "induction": induction_score(uniform, half)}
    rows = []
    for layer, pattern in sorted(self_attention_patterns(model, tokens).items()):
        scores = {"previous_token": previous_token_score(pattern),
                  "duplicate_token": duplicate_token_score(pattern, tokens), "induction": induction_score(pattern, half)}
        for head in range(pattern.shape[1]):
            rows.append({"layer": layer, "head": head,
                         **{name: float(values[head]) for name, values in scores.items()},
                         **{f"{name} chance": float(chance[name][0]) for name in HEAD_TYPES}})
    return pd.DataFrame(rows)


def bracket_table(model, tokenizer, texts):
    """One row per head: layer, head, bracket weight and hit rate on `texts` (code), from the token holding a
    closing bracket to the token holding its opening one (pairs inside one token are left out)."""
    rows_tokens, pairs = [], []
    for text in texts:
        ids = [BOS] + tokenizer.encode(text)[:model.config.max_len - 1]
        owner = []  # owner[c]: the token position that spells character c of the decoded text
        for position, i in enumerate(ids[1:], start=1):
            owner += [position] * len(tokenizer.decode([i]))
        spelled = tokenizer.decode(ids[1:])
        if len(spelled) != len(owner):  # a character split across tokens: positions would not line up
            continue
        rows_tokens.append(ids)
        pairs.append([(owner[q], owner[k]) for q, k in bracket_pairs(spelled) if owner[q] != owner[k]])
    if not rows_tokens:
        raise ValueError("none of the texts could be lined up with its tokens")
    width = max(map(len, rows_tokens))
    tokens = torch.tensor([ids + [0] * (width - len(ids)) for ids in rows_tokens])  # (B, T) right-padded
    rows = []
    for layer, pattern in sorted(self_attention_patterns(model, tokens).items()):
        weight, hits = bracket_score(pattern, pairs)
        rows += [{"layer": layer, "head": head, "bracket_weight": float(weight[head]),
                  "bracket_hit_rate": float(hits[head])} for head in range(pattern.shape[1])]
    return pd.DataFrame(rows)


def induction_over_training(task, snapshots):
    """From a run on the induction task: one row per snapshot with its step, each head's induction score on the
    probes (columns "L{layer}H{head}"), and the probes' mean loss on their first and on their repeated half."""
    rows = []
    for snapshot in snapshots:
        row = {"step": snapshot["step"]}
        for name, patterns in snapshot["patterns"].items():
            kind, layer, _ = parse_pattern_name(name)
            if kind != "decoder self":
                continue
            scores = torch.stack([induction_score(torch.as_tensor(patterns[p:p + 1]).float(), half, 1 + prefix)
                                  for p, (prefix, half) in enumerate(map(repeat_split, task.probes))]).mean(0)  # (H,)
            row |= {f"L{layer}H{head}": float(score) for head, score in enumerate(scores)}
        if "losses" in snapshot:  # (P, T): position t predicts probe token t
            halves = [(loss[prefix:prefix + half].mean(), loss[prefix + half + 1:prefix + 2 * half].mean())
                      for loss, (prefix, half) in zip(torch.as_tensor(snapshot["losses"]).float(),
                                                      map(repeat_split, task.probes))]
            row["first half loss"] = float(sum(h[0] for h in halves) / len(halves))
            row["repeated half loss"] = float(sum(h[1] for h in halves) / len(halves))  # its first token is new
        rows.append(row)
    return pd.DataFrame(rows)
