"""Views of a traced decoding run for the step-by-step page, as plain data: tables, bars, attention rows, the tree."""
from dataclasses import dataclass

import pandas as pd
import torch

from attnviz.decoding import beam_search, greedy, sample
from attnviz.interpret.patterns import parse_pattern_name

TREE_STEPS = 8  # the page shows a beam tree this many steps at a time: more, and its labels run into each other


def top_choices(step, row=0, n=10, temperature=1.0, top_k=None, top_p=None, chosen=None):
    """(ids, probs): the `n` most likely next tokens of one row of a step under these settings, most likely
    first, with `chosen` added last if it is not among them (a forced or an unlikely sampled token)."""
    probs = step.probs(temperature, top_k, top_p)[row]  # (V,)
    ids = probs.topk(min(n, len(probs))).indices.tolist()
    if chosen is not None and chosen not in ids:
        ids.append(int(chosen))
    return ids, probs[ids]


def steps_table(decoded, tokenizer, row=0):
    """One line per step (numbered from 1) of one row/hypothesis: the token the decoder read, the token chosen,
    its probability and rank under the model's own distribution, the entropy of the distribution chosen from."""
    lines = []
    for t, (r, token) in enumerate(zip(decoded.trace_rows(row), decoded.ids(row))):
        step = decoded.steps[t]
        probs = step.logits[r].float().softmax(-1)  # (V,)
        lines.append({"step": t + 1, "reads": tokenizer.id_to_token(int(step.input[r])),
                      "chose": tokenizer.id_to_token(token), "probability": probs[token].item(),
                      "rank": int((probs > probs[token]).sum()) + 1, "entropy": step.entropy[r].item(),
                      "forced": step.forced})
    return pd.DataFrame(lines, columns=["step", "reads", "chose", "probability", "rank", "entropy", "forced"])


def hypotheses_table(decoded, tokenizer):
    """Beam search's hypotheses, best first: the output, its tokens, log-probability and score."""
    lines = [{"rank": i + 1, "output": tokenizer.decode(h.tokens), "tokens": " ".join(tokenizer.labels(h.tokens)),
              "length": len(h.tokens), "log-prob": h.logprob, "score": h.score, "finished": h.finished}
             for i, h in enumerate(decoded.hypotheses)]
    return pd.DataFrame(lines, columns=["rank", "output", "tokens", "length", "log-prob", "score", "finished"])


@torch.inference_mode()
def compare_methods(model, tokenizer, ids, max_new_tokens=100, seeds=range(5), temperature=1.0, top_k=None,
                    top_p=None, width=4, length_penalty=0.0):
    """Greedy decoding, beam search and sampling with a few seeds on one input, side by side (one line each)."""
    runs = [("greedy", "", greedy(model, tokenizer, ids, max_new_tokens, trace=False)),
            ("beam", f"width {width}", beam_search(model, tokenizer, ids, max_new_tokens, width, length_penalty,
                                                   trace=False))]
    runs += [("sample", f"seed {seed}", sample(model, tokenizer, ids, max_new_tokens, temperature, top_k, top_p, seed,
                                                trace=False)) for seed in seeds]
    lines = []
    for method, setting, decoded in runs:
        generated, logprob = decoded.ids(0), decoded.logprob[0].item()
        lines.append({"method": method, "setting": setting, "output": tokenizer.decode(generated), "log-prob": logprob,
                      "per token": logprob / max(len(generated), 1), "stop": decoded.stop[0]})
    return pd.DataFrame(lines, columns=["method", "setting", "output", "log-prob", "per token", "stop"])


@dataclass
class AttentionRows:
    """One kind of attention over the steps of one row/hypothesis, as the step-by-step page shows it."""
    patterns: torch.Tensor  # (L, H, N, Tk) row t: where the position fed at step t looked
    queries: list  # N token ids: the token fed at each step
    keys: list  # Tk token ids: the source (cross-attention) or the decoder's sequence (self-attention)
    masked: torch.Tensor  # (N, Tk) keys a step could not see yet (self-attention: later positions)


def attention_rows(decoded, kind, row=0, steps=None):
    """The attention rows of `kind` ("cross" or "decoder self") of the first `steps` steps, all layers stacked."""
    by_layer = {parse_pattern_name(name)[1]: name for name in decoded.steps[0].attention
                if parse_pattern_name(name)[0] == kind}
    if not by_layer:
        raise ValueError(f"this model has no {kind} attention")
    n = len(decoded.ids(row)) if steps is None else steps
    patterns = torch.stack([decoded.attention(by_layer[layer], row)[:, :n] for layer in sorted(by_layer)])  # (L,H,n,Tk)
    queries = [int(decoded.steps[t].input[r]) for t, r in enumerate(decoded.trace_rows(row)[:n])]
    if kind == "cross":
        keys = decoded.source[0 if decoded.hypotheses else row].tolist()
        masked = torch.zeros(n, len(keys), dtype=torch.bool)  # (n, S)
    else:
        first = decoded.context.shape[1] - 1  # the position fed at step 0
        keys = decoded.sequence(row)[:first + n]
        patterns = patterns[..., :len(keys)]
        masked = torch.arange(len(keys))[None, :] > first + torch.arange(n)[:, None]  # (n, T0 - 1 + n)
    return AttentionRows(patterns, queries, keys, masked)


def beam_tree(decoded, tokenizer=None, steps=None):
    """Beam search as tree nodes for `figures.beam_tree`: the start, then every candidate each step looked at,
    with its parent (the beam it extends), fate (kept, finished, pruned) and whether the best hypothesis runs
    through it. Dicts with id, parent, step, token, label, fate, logprob, score, best.

    `steps` (first, last), counted from 1, keeps the candidates of those steps only, under the beams of step
    first - 1 they extend (roots, without a parent): a long search drawn whole is too crowded to read."""
    if decoded.method != "beam" or not decoded.steps:
        raise ValueError("a beam tree needs a traced beam search")
    label = tokenizer.id_to_token if tokenizer is not None else str
    best = decoded.hypotheses[0]
    on_best = set(zip(range(len(best.tokens)), best.rows, best.tokens))  # (step, beam row, token)
    start = int(decoded.context[0, -1])
    nodes = [dict(id=0, parent=None, step=0, token=start, label=label(start), fate="start", logprob=0.0, score=0.0,
                  best=True)]
    beam_nodes = {0: 0}  # beam row of the current step -> its node
    for t, step in enumerate(decoded.steps):
        next_beam_nodes = {}
        for c in step.candidates:
            nodes.append(dict(id=len(nodes), parent=beam_nodes[c.parent], step=t + 1, token=c.token,
                              label=label(c.token), fate=c.fate, logprob=c.logprob, score=c.score,
                              best=(t, c.parent, c.token) in on_best))
            if c.fate == "kept":
                next_beam_nodes[c.row] = len(nodes) - 1
        beam_nodes = next_beam_nodes
    if steps is None:
        return nodes
    first, last = steps
    shown = [node for node in nodes if first <= node["step"] <= last]
    roots = {node["parent"] for node in shown if node["step"] == first}
    return [dict(node, parent=None) for node in nodes if node["id"] in roots] + shown
