"""A user's input run through a model: cut to fit, decoded greedily, every attention pattern captured.

The model may live on any device: its inputs are moved there, and an `InputRun` (ids, patterns, probabilities)
is kept on the CPU, where the pages read it.
"""
from dataclasses import dataclass

import torch

from attnviz.checks import EMPTY_INPUT, cut_note, unknown_note
from attnviz.decoding import greedy
from attnviz.i18n import _
from attnviz.interpret.ablation import ablation_effect
from attnviz.interpret.patterns import KINDS, parse_pattern_name
from attnviz.models.hooks import ablate, capture


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
        return torch.ones(T, T, dtype=torch.bool, device="cpu").triu(1)  # (T, T)

    def forward(self, model):
        """One full forward pass over this input on the model's device (what `head_mechanics` needs as `run`)."""
        device = model_device(model)
        return model.logits(None if self.src is None else self.src.to(device), self.tgt_in.to(device))


def model_device(model):
    return next(model.parameters()).device


def fit_input(task, text, max_tokens):
    """(the longest prefix of `text` that encodes to at most `max_tokens` tokens, notes for the user)."""
    n = len(task.tokenizer.encode(text))
    if n <= max_tokens:
        return text, []
    low, high = 0, len(text)  # bisect on characters: the prefix of `low` characters fits, of `high` does not
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if len(task.tokenizer.encode(text[:middle])) <= max_tokens else (low, middle)
    return text[:low], [cut_note(n, text[:low], max_tokens)]


def input_notes(task, text):
    """What to tell the user about an input before the model reads it: notes (an empty prompt, characters the
    tokenizer does not know), or a ValueError when there is nothing to read (a seq2seq input of only spaces).
    Every page that takes the shared input asks this, so the same input gets the same answer everywhere. Notes and
    refusals are in the session's language."""
    if not text.strip() and task.kind == "seq2seq":
        raise ValueError(_(EMPTY_INPUT))
    notes = [] if text else [_("The prompt is empty: the model writes from <bos> alone.")]
    if unknown := task.unknown_characters(text):
        notes.append(unknown_note(unknown))
    return notes


@torch.no_grad()
def run_input(model, task, text, max_tokens=MAX_SHOWN_TOKENS, max_new_tokens=None):
    """Encode a user's input (cut to `max_tokens`), decode it greedily, and capture the attention over both.

    A ValueError says what is wrong with the input (`input_notes`).
    """
    limit = min(max_tokens, model.config.max_len - 2)  # room for EOS / BOS and at least one output token
    text, notes = fit_input(task, text, limit)
    notes = input_notes(task, text) + notes
    ids = task.encode_source(text, limit + 1, device="cpu")  # (1, S): seq2seq tokens + EOS; lm BOS + tokens
    room = model.config.max_len - (1 if model.has_encoder else ids.shape[1])
    if max_new_tokens is None:  # an output about as long as the task's, or a short continuation for an LM
        max_new_tokens = LM_CONTINUATION if task.kind == "lm" else max(task.max_tgt_len, 2 * ids.shape[1]) + 2
    max_new_tokens = min(room, max_new_tokens)
    decoded = greedy(model, task.tokenizer, ids, max_new_tokens=max_new_tokens, trace=False)
    sequence = torch.tensor([decoded.sequence(0)], device="cpu")  # (1, T + 1) context + output
    src = ids if model.has_encoder else None
    tgt_in, tgt_out = sequence[:, :-1], sequence[:, 1:]  # (1, T)
    labels = task.tokenizer.labels
    run = InputRun(text, ids, max_new_tokens, src, tgt_in, tgt_out, None if src is None else labels(src[0]),
                   labels(tgt_in[0]), task.tokenizer.decode(decoded.ids(0)), {}, notes)
    with capture(model) as cache:
        run.forward(model)
    run.cache.update({name: pattern.cpu() for name, pattern in cache.items()})
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
    before, after = effect.probs_before[0].cpu(), effect.probs_after[0].cpu()  # (T, V)
    return InputAblation(task.tokenizer.decode(decoded.ids(0)), before.gather(-1, chosen)[:, 0],
                         after.gather(-1, chosen)[:, 0])
