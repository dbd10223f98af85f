"""Greedy decoding, sampling and beam search, one step at a time, with a trace of every step.

All three drive the one model interface, so Transformers and RNN models decode alike:

    state = model.encode(src)                      seq2seq; a language model prefills its prompt instead
    logits, state = model.decode_step(state, tok)  one new position per row, using the KV cache
    state = state.select(index)                    keep/reorder rows (beam search)

The decoder reads a *context* first: BOS for seq2seq, BOS + prompt for a language model. Step t feeds
the last token so far and chooses generated token t. Its trace (`Step`) keeps the raw logits (redraw them
for any temperature/top-k/top-p with `distribution`), the top tokens, the entropy, and the attention row
of every layer and head for the position it fed, e.g. `decoder.layers.0.self_attn.hook_pattern`
(B, H, 1, Tk). Stacked, those rows equal the rows of one full forward pass over the final sequence.

Special ids come from the tokenizer (`bos_id`, `eos_id`, `pad_id`), or are the shared PAD, BOS, EOS without one.
Decoding runs under `torch.inference_mode` (faster): read the results freely, clone a tensor to change it in place.
"""
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from attnviz.data.tokenizers import BOS, EOS, PAD
from attnviz.decoding.sampling import check_sampling, distribution, entropy
from attnviz.i18n import _
from attnviz.models.hooks import capture


@dataclass
class Hypothesis:
    """One beam-search hypothesis."""
    tokens: list  # generated ids, ending with EOS if finished
    logprob: float  # sum of the model's log-probabilities of `tokens`
    score: float  # logprob / len(tokens) ** length_penalty: what beam search ranks by
    finished: bool  # ended with EOS (else cut by a length limit, or still growing)
    rows: list  # rows[t]: the beam row of step t that chose tokens[t] (index into steps[t] tensors)


@dataclass
class Candidate:
    """An extension beam search looked at in one step, and what became of it."""
    parent: int  # the beam row it extends (index into Step.beams)
    token: int
    logprob: float
    score: float
    fate: str  # "kept": a beam of the next step (row `row`); "finished": ended with EOS; "pruned"
    row: int | None = None


@dataclass
class Step:
    """Everything about one decoding step. Tensors have one row per sequence (beam search: per live beam)."""
    index: int
    input: torch.Tensor  # (B,) the token fed at this step
    logits: torch.Tensor  # (B, V) raw next-token scores
    top_ids: torch.Tensor  # (B, k) most likely next tokens under the distribution the method chose from
    top_probs: torch.Tensor  # (B, k) their probabilities
    entropy: torch.Tensor  # (B,) entropy of that distribution, in nats
    forced: bool  # the caller chose this step's token
    attention: dict  # {hook name: (B, H, 1, Tk)} the attention rows of the position fed at this step
    token: torch.Tensor | None = None  # (B,) chosen tokens (greedy/sample; PAD for rows already done)
    logprob: torch.Tensor | None = None  # (B,) the model's log-probability of `token`
    done: torch.Tensor | None = None  # (B,) rows that had ended before this step
    beams: list | None = None  # beam search: the live hypotheses this step extends, in row order
    candidates: list | None = None  # beam search: each beam's best extensions and their fate

    def probs(self, temperature=1.0, top_k=None, top_p=None):
        """This step's distribution redrawn for other settings, without running the model. (B, V)"""
        return distribution(self.logits, temperature, top_k, top_p)


@dataclass
class Decoded:
    """The result of a decoding run."""
    method: str  # "greedy" | "sample" | "beam"
    settings: dict
    source: torch.Tensor | None  # (B, S) the encoder's input; None for a language model
    context: torch.Tensor  # (B, T0) decoder input before step 0: BOS, or BOS + prompt for an LM
    tokens: torch.Tensor  # (B, N) generated ids, PAD after a row's EOS (beam: the best hypothesis)
    logprob: torch.Tensor  # (B,) the model's log-probability of each row's generated tokens
    stop: list  # per row: "eos", "max_new_tokens" or "max_len" (the model's config.max_len)
    steps: list  # one Step per step; empty with trace=False
    hypotheses: list  # beam search: the n best Hypothesis, best first; [] otherwise
    eos_id: int

    def ids(self, row=0):
        """Generated ids of one row (beam search: of the hypothesis of that rank), up to and including EOS."""
        if self.hypotheses:
            return list(self.hypotheses[row].tokens)
        ids = self.tokens[row].tolist()
        return ids[: ids.index(self.eos_id) + 1] if self.stop[row] == "eos" else ids

    def sequence(self, row=0):
        """Context followed by the generated ids: the whole sequence, which the model can read in one pass."""
        return self.context[0 if self.hypotheses else row].tolist() + self.ids(row)

    def trace_rows(self, row=0):
        """For each step of one row/hypothesis, the row of the step's tensors it lives in (beam search: its beams)."""
        return list(self.hypotheses[row].rows) if self.hypotheses else [row] * len(self.ids(row))

    def attention(self, name, row=0):
        """(H, N, Tk): the rows of `name` over all N steps of one row/hypothesis, zero-padded on the right.

        For a self-attention pattern the keys are `sequence(row)[:Tk]`; for cross-attention, the source.
        """
        if not self.steps:
            raise ValueError("this run kept no trace: decode with trace=True to see attention")
        patterns = [self.steps[t].attention[name][r, :, 0] for t, r in enumerate(self.trace_rows(row))]  # (H, Tk_t)
        width = max(p.shape[-1] for p in patterns)
        return torch.stack([F.pad(p, (0, width - p.shape[-1])) for p in patterns], dim=1)  # (H, N, Tk)


def special_ids(tokenizer):
    """(bos, eos, pad) of a tokenizer, or the shared defaults without one."""
    if tokenizer is None:
        return BOS, EOS, PAD
    return tokenizer.bos_id, tokenizer.eos_id, tokenizer.pad_id


def as_batch(ids, device):
    """A list of ids, a list of lists, or a 1-D/2-D tensor as a (B, T) LongTensor."""
    try:
        ids = torch.as_tensor(ids, dtype=torch.long, device=device)
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"token ids must be a list of whole numbers or rows of equal length ({error})") from None
    if ids.dim() == 1:
        ids = ids[None]
    if ids.dim() != 2:
        raise ValueError(f"token ids must be one sequence or a batch (B, T), not shape {tuple(ids.shape)}")
    return ids


def check_ids(ids, vocab_size, what):
    if ids.numel() and (ids.min() < 0 or ids.max() >= vocab_size):
        bad = ids[(ids < 0) | (ids >= vocab_size)][0].item()
        raise ValueError(f"the {what} holds token id {bad}, but this model knows ids 0 to {vocab_size - 1}")


def check_forced(forced, vocab_size):
    """{step: token} from a dict, or from a list/tensor (a forced prefix)."""
    if forced is None:
        return {}
    if not isinstance(forced, dict):
        forced = dict(enumerate(torch.as_tensor(forced, dtype=torch.long).view(-1).tolist()))
    for step, token in forced.items():
        if not isinstance(step, int) or step < 0:
            raise ValueError(f"forced steps are numbered 0, 1, 2, ...; {step!r} is not a step")
        if not 0 <= int(token) < vocab_size:
            raise ValueError(f"cannot force token {token} at step {step}: this model knows ids 0 to {vocab_size - 1}")
    return {step: int(token) for step, token in forced.items()}


def start(model, ids, bos, max_new_tokens):
    """Check the input and start decoding: (source, context, state, n_steps, limit).

    `ids` is the source (seq2seq; its own EOS included, as the tasks encode it) or the prompt (language model,
    with or without its leading BOS). `n_steps` is how many steps the limits allow: `max_new_tokens`, and
    the model's `config.max_len` for the whole decoder sequence (context + generated). `limit` names the one
    that binds.
    """
    if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(_("max_new_tokens={max_new_tokens} is not possible: use a whole number of 0 or more").format(
            max_new_tokens=repr(max_new_tokens)))
    config = model.config
    ids = as_batch(ids, next(model.parameters()).device)  # (B, T)
    if model.has_encoder:
        if ids.shape[1] == 0:
            raise ValueError(_("the source is empty: give at least one token"))
        check_ids(ids, config.src_vocab_size, "source")
        if ids.shape[1] > config.max_len:
            raise ValueError(_("the source has {n} tokens; this model reads at most {most}").format(
                n=ids.shape[1], most=config.max_len))
        source, context = ids, ids.new_full((len(ids), 1), bos)  # (B, S), (B, 1)
        state = model.encode(source)
    else:
        check_ids(ids, config.tgt_vocab_size, "prompt")
        starts = ids[:, 0] == bos if ids.shape[1] else ids.new_zeros(len(ids), dtype=torch.bool)  # (B,)
        if starts.any() and not starts.all():
            raise ValueError("some prompts start with BOS and some do not: give all of them with BOS or none")
        has_bos = bool(starts.all())
        source, context = None, ids if has_bos else torch.cat([ids.new_full((len(ids), 1), bos), ids], 1)  # (B, T0)
        if context.shape[1] > config.max_len:
            raise ValueError(_("the prompt has {n} tokens with BOS; this model reads at most {most}").format(
                n=context.shape[1], most=config.max_len))
        state = model.encode(context[:, :-1])  # prefill all but the last context token, which step 0 feeds
    room = config.max_len - context.shape[1]
    limit = "max_len" if room < max_new_tokens else "max_new_tokens"
    return source, context, state, min(room, max_new_tokens), limit


def attended(model, trace):
    """A context manager capturing every attention pattern during one step, or an empty dict without trace."""
    return capture(model) if trace else nullcontext({})


def step_record(index, token_in, logits, probs, forced, attention, top, **extra):
    top_probs, top_ids = probs.topk(min(top, probs.shape[-1]), dim=-1)  # (B, k)
    return Step(index, token_in, logits, top_ids, top_probs, entropy(probs), forced, dict(attention), **extra)


def generate(model, tokenizer, ids, weigh, pick, max_new_tokens, forced, trace, top, method, settings):
    """Decode every row token by token: `weigh(t, logits)` turns step t's logits into the distribution,
    `pick(t, probs)` chooses from it."""
    bos, eos, pad = special_ids(tokenizer)
    source, context, state, n_steps, limit = start(model, ids, bos, max_new_tokens)
    forced = check_forced(forced, model.config.tgt_vocab_size)
    token = context[:, -1]  # (B,)
    done = torch.zeros_like(token, dtype=torch.bool)  # (B,)
    logprob = torch.zeros(token.shape, device=token.device)  # (B,)
    chosen, steps = [], []
    for t in range(n_steps):
        with attended(model, trace) as attention:
            logits, state = model.decode_step(state, token)  # (B, V)
        probs = weigh(t, logits)  # (B, V)
        new = torch.full_like(token, forced[t]) if t in forced else pick(t, probs)  # (B,)
        new = new.masked_fill(done, pad)
        new_logprob = logits.float().log_softmax(-1).gather(-1, new[:, None])[:, 0].masked_fill(done, 0.0)  # (B,)
        logprob += new_logprob
        if trace:
            steps.append(step_record(t, token, logits, probs, t in forced, attention, top,
                                     token=new, logprob=new_logprob, done=done))
        chosen.append(new)
        done = done | (new == eos)
        token = new
        if done.all():
            break
    tokens = torch.stack(chosen, 1) if chosen else context[:, :0]  # (B, N)
    return Decoded(method, settings, source, context, tokens, logprob, ["eos" if d else limit for d in done.tolist()],
                   steps, [], eos)


@torch.inference_mode()
def greedy(model, tokenizer, ids, max_new_tokens=100, forced=None, trace=True, top=10):
    """Always the most likely next token. `ids`: the source (seq2seq) or the prompt (LM), (S,) or (B, S).

    `forced`: {step: token id} or a list (a forced prefix); decoding continues from the forced tokens.
    `trace=False` skips the per-step record (faster); `top`: how many top tokens each step records.
    """
    return generate(model, tokenizer, ids, lambda t, logits: logits.float().softmax(-1),
                    lambda t, probs: probs.argmax(-1),
                    max_new_tokens, forced, trace, top, "greedy", {})


@torch.inference_mode()
def sample(model, tokenizer, ids, max_new_tokens=100, temperature=1.0, top_k=None, top_p=None, seed=None,
           forced=None, trace=True, top=10, changes=None):
    """Draw each token from `distribution(logits, temperature, top_k, top_p)`; a seed makes it repeatable.

    `changes` ({step: {"temperature": 1.5, ...}}) switches to other settings from that step on, so a run goes on
    with new settings and keeps the tokens drawn before: a change keeps the settings it does not name, and the
    random draws go on where they were unless it names another seed, which starts them again from that seed.
    The steps record the top tokens of the distribution they were drawn from; `step.logits` keep the raw scores.
    """
    first = dict(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
    stretches = sampling_stretches(first, changes or {}, next(model.parameters()).device)
    at = lambda t: next(stretch for stretch in reversed(stretches) if stretch[0] <= t)  # (first step, settings, rng)
    view = lambda settings: {name: value for name, value in settings.items() if name != "seed"}
    return generate(model, tokenizer, ids, lambda t, logits: distribution(logits, **view(at(t)[1])),
                    lambda t, probs: torch.multinomial(probs, 1, generator=at(t)[2])[:, 0],
                    max_new_tokens, forced, trace, top, "sample", dict(first, changes=dict(changes or {})))


def sampling_stretches(first, changes, device):
    """[(first step, settings, generator)] for a sampling run: `first` from step 0, then each change merged in
    from its step on. A stretch shares the generator of the one before unless it names another seed."""
    stretches = []
    for step, change in sorted({0: {}, **changes}.items()):
        if not isinstance(step, int) or step < 0:
            raise ValueError(f"changes of settings happen at steps 0, 1, 2, ...; {step!r} is not a step")
        if unknown := set(change) - set(first):
            raise ValueError(f"cannot change {', '.join(sorted(unknown))} while sampling: "
                             f"only {', '.join(first)} can change")
        settings = {**(stretches[-1][1] if stretches else first), **change}
        check_sampling(settings["temperature"], settings["top_k"], settings["top_p"])
        if stretches and stretches[-1][1]["seed"] == settings["seed"]:
            generator = stretches[-1][2]
        else:
            generator = torch.Generator(device)
            if settings["seed"] is None:
                generator.seed()
            else:
                generator.manual_seed(settings["seed"])
        stretches.append((step, settings, generator))
    return stretches


def length_normalised(logprob, length, length_penalty):
    return logprob / max(length, 1) ** length_penalty


def best_possible(logprob, length, longest, length_penalty):
    """Upper bound on the score of any completion of a live hypothesis: log-probs only fall as it grows,
    so the best case is its log-prob now over the largest length factor among lengths length+1..longest."""
    return logprob / max((length + 1) ** length_penalty, longest ** length_penalty)


def beam_candidates(total, live, width, eos, ended, kept, length, length_penalty):
    """For the trace: each beam's `width` best extensions without EOS and its EOS extension, with their fate."""
    best = live.topk(min(width, live.shape[1]), dim=-1).indices.tolist()  # (W, width)
    candidates = []
    for parent, row_total in enumerate(total.tolist()):
        for token in best[parent] + [eos]:
            logprob = row_total[token]
            if logprob == float("-inf"):
                continue
            row = kept.get((parent, token))
            fate = "kept" if row is not None else "finished" if token == eos and parent in ended else "pruned"
            candidates.append(Candidate(parent, token, logprob, length_normalised(logprob, length, length_penalty),
                                        fate, row))
    return candidates


@torch.inference_mode()
def beam_search(model, tokenizer, ids, max_new_tokens=100, width=4, length_penalty=0.0, n_best=1, forced=None,
                trace=True, top=10):
    """Keep the `width` most likely partial sequences; return the `n_best` complete ones by score.

    score = log-prob / length ** length_penalty (0: plain log-prob; > 0 favours longer outputs). Each step
    ranks every extension of every beam: those among the `width` best that end with EOS are finished
    hypotheses, the `width` best that do not are the next beams (so width 1 is greedy decoding). The search
    stops once `n_best` are finished and no live beam can still beat them, or at the length limit (then
    the live beams count too, unfinished). One source (or prompt) at a time. Steps record each beam's raw
    distribution and its candidates.
    """
    if not isinstance(width, int) or width < 1:
        raise ValueError(_("width={width} is not possible: use a whole number of 1 or more").format(width=repr(width)))
    if not isinstance(n_best, int) or n_best < 1:
        raise ValueError(_("n_best={n_best} is not possible: use a whole number of 1 or more").format(
            n_best=repr(n_best)))
    bos, eos, _pad = special_ids(tokenizer)
    source, context, state, n_steps, limit = start(model, ids, bos, max_new_tokens)
    if context.shape[0] != 1:
        raise ValueError(f"beam search decodes one input at a time, not a batch of {context.shape[0]}")
    forced = check_forced(forced, model.config.tgt_vocab_size)
    beams = [Hypothesis([], 0.0, 0.0, False, [])]
    token = context[:, -1]  # (W,)
    finished, steps = [], []
    for t in range(n_steps):
        with attended(model, trace) as attention:
            logits, state = model.decode_step(state, token)  # (W, V)
        logp = logits.float().log_softmax(-1)  # (W, V)
        total = logp + torch.tensor([b.logprob for b in beams], device=logp.device)[:, None]  # (W, V)
        if t in forced:
            total = total.masked_fill(torch.arange(total.shape[1], device=total.device) != forced[t], float("-inf"))
        V = total.shape[1]
        ranked = total.flatten().topk(min(width, int(torch.isfinite(total).sum()))).indices.tolist()
        ended = [i // V for i in ranked if i % V == eos]  # beams whose EOS extension is among the best
        for w in ended:
            end = total[w, eos].item()
            finished.append(Hypothesis(beams[w].tokens + [eos], end, length_normalised(end, t + 1, length_penalty),
                                       True, beams[w].rows + [w]))
        live = total.clone()
        live[:, eos] = float("-inf")  # (W, V) extensions that keep going
        values, flat = live.flatten().topk(min(width, int(torch.isfinite(live).sum())))  # (W',)
        parents, tokens = flat // V, flat % V  # (W',)
        new_beams = [Hypothesis(beams[p].tokens + [tok], v, length_normalised(v, t + 1, length_penalty), False,
                                beams[p].rows + [p])
                     for p, tok, v in zip(parents.tolist(), tokens.tolist(), values.tolist())]
        if trace:
            kept = {(p, tok): row for row, (p, tok) in enumerate(zip(parents.tolist(), tokens.tolist()))}
            steps.append(step_record(t, token, logits, logp.exp(), t in forced, attention, top, beams=beams,
                                     candidates=beam_candidates(total, live, width, eos, set(ended), kept, t + 1,
                                                                length_penalty)))
        beams = new_beams
        if not beams:
            break
        if len(finished) >= n_best:
            worst_kept = sorted(h.score for h in finished)[-n_best]
            if max(best_possible(b.logprob, t + 1, n_steps, length_penalty) for b in beams) <= worst_kept:
                break
        state, token = state.select(parents), tokens
    else:
        finished += beams  # cut by the length limit
    hypotheses = sorted(finished, key=lambda h: h.score, reverse=True)[:n_best]
    best = hypotheses[0]
    return Decoded("beam", dict(width=width, length_penalty=length_penalty, n_best=n_best), source, context,
                   torch.tensor([best.tokens], dtype=torch.long, device=context.device).view(1, -1),
                   torch.tensor([best.logprob], device=context.device), ["eos" if best.finished else limit], steps,
                   hypotheses, eos)


METHODS = {"greedy": greedy, "sample": sample, "beam": beam_search}  # by the name `Decoded.method` gives
