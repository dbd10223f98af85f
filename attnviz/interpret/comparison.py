"""Comparing models on one task: accuracy by length, cost by length, the same input through each model.

    rows = accuracy_by_length(model, task, lengths=[4, 8, 16, 32])   # beyond the trained lengths too
    rows = forward_cost(model.config, [16, 64, 256, 1024])           # time and memory of one forward pass
    text = translate(model, tokenizer, "hello"); marks = error_marks(text, reference(task, "hello"))
    patterns = alignment(model, tokenizer, "hello", "olleh")         # cross-attention on a shared grid

Accuracy by length draws fresh examples of each length from the task's own generator (same alphabet, same
tokenizer, so token ids match the model's), none of them a training example. A length the model cannot read
(a Transformer's positional table ends at `config.max_len`; decoding an RNN stops there too) gives a row that
says so instead of failing.

Cost is measured on the machine at hand, on a batch of random tokens with source and target of the same length:
- `forward_ms`: milliseconds of one forward pass without gradients (torch.utils.benchmark, which synchronises CUDA).
- `attention_weights`: how many attention weights the forward pass computes (each Transformer head
  T x T in every attention module, the RNN's one T x T alignment), counted by capturing them. This is
  the quadratic term: a fused attention kernel computes all of them even when it never stores them.
- `activation_bytes`: bytes of the tensors autograd keeps from the forward pass for the backward pass of a
  training step (each storage counted once, parameters not counted), found with
  `torch.autograd.graph.saved_tensors_hooks`. It works the same on every device, unlike the CPU's
  allocator, which has no peak statistics. On CUDA `peak_bytes` adds the allocator's peak for the forward.
"""
from dataclasses import replace

import torch
import torch.utils.benchmark as benchmark

from attnviz.data.tasks import task_from_spec
from attnviz.decoding import greedy
from attnviz.i18n import _
from attnviz.models import build_model, capture, pattern_names
from attnviz.training.evaluation import evaluate


def trained_lengths(task):
    """(min_len, max_len) of a task with a length parameter (copy, reverse, sort, addition), else None."""
    return (task.params["min_len"], task.params["max_len"]) if "min_len" in task.params else None


def lengths_up_to(task, longest=None):
    """About 16 lengths from 2 to `longest` (default: 8 past the longest trained length), both trained ends included."""
    low, high = trained_lengths(task)
    longest = longest or high + 8
    return sorted({*range(2, longest + 1, max(1, longest // 16)), low, high, longest})


def examples_of_length(task, length, n=200, seed=1):
    """Up to n new examples of `task` whose length parameter is exactly `length`, in the task's tokens; none of
    them is one the model trained on (a short length may have few others, or none)."""
    alphabet = task.params.get("alphabet")
    distinct = len(alphabet) ** length if alphabet else 10 ** (2 * length)  # letters, or two numbers of `length` digits
    params = {**task.params, "min_len": length, "max_len": length, "n_train": 1, "n_val": 1,
              "n_test": max(1, min(n, distinct // 2))}
    fresh = task_from_spec({"name": task.name, "seed": seed, "params": params}, task.tokenizer).test
    trained = {src for src, _tgt in task.train}
    return [(src, tgt) for src, tgt in fresh if src not in trained]


def widest(task, examples):
    """Longest source and decoder sequence, in tokens (with EOS / BOS), of a list of examples."""
    return max(max(len(task.tokenizer.encode(src)), len(task.tokenizer.encode(tgt))) + 1 for src, tgt in examples)


def accuracy_by_length(model, task, lengths=None, n=200, seed=1):
    """One row per length: {length, examples, trained, exact_match, token_accuracy, note}.

    Tasks with a length parameter get fresh examples of each length in `lengths` (default: `lengths_up_to`);
    `trained` says whether the length was in the training range. Other tasks (dates) have no such parameter:
    their test split is grouped by source length in tokens instead, all within the trained range.
    """
    if trained_lengths(task):
        low, high = trained_lengths(task)
        buckets = {length: examples_of_length(task, length, n, seed) for length in lengths or lengths_up_to(task)}
        in_range = lambda length: low <= length <= high
    else:
        buckets = {}
        for src, tgt in task.test:
            buckets.setdefault(len(task.tokenizer.encode(src)), []).append((src, tgt))
        buckets = dict(sorted(buckets.items()))
        in_range = lambda length: True
    rows = []
    for length, examples in buckets.items():
        row = {"length": length, "examples": len(examples), "trained": in_range(length),
               "exact_match": None, "token_accuracy": None, "note": ""}
        needed = widest(task, examples) if examples else 0
        if not examples:
            row["note"] = _("every example of this length is a training example")
        elif needed > model.config.max_len:
            row["note"] = _("beyond max_len: needs {needed} positions, the model has {max_len}").format(
                needed=needed, max_len=model.config.max_len)
        else:
            metrics = evaluate(model, (task.collate(examples[i:i + 256]) for i in range(0, len(examples), 256)))
            row.update(exact_match=metrics["exact_match"], token_accuracy=metrics["token_accuracy"])
        rows.append(row)
    return rows


def by_length(rows, metric, scale=1.0):
    """{label: (lengths, values)} from {label: rows of one of the by-length functions}, for `figures.curves`;
    rows without a value (beyond max_len) are left out."""
    return {label: ([r["length"] for r in rs if r[metric] is not None],
                    [r[metric] * scale for r in rs if r[metric] is not None]) for label, rs in rows.items()}


def cost_model(config, longest, seed=0):
    """A fresh model of `config` (weights do not change the cost) that reads `longest` tokens, in eval mode."""
    return build_model(replace(config, max_len=max(config.max_len, longest)), torch.Generator().manual_seed(seed)).eval()


def random_tokens(config, batch_size, length, seed=0):
    """(B, T) ids drawn from the ordinary tokens (never PAD/BOS/EOS/UNK), the same for source and target."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(4, min(config.src_vocab_size, config.tgt_vocab_size), (batch_size, length), generator=g)


def activation_bytes(model, src, tgt_in):
    """Bytes autograd saves for the backward pass during one forward pass (each storage once, no parameters)."""
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(src, tgt_in)
    return sum(saved.values())


def forward_ms(model, src, tgt_in, min_run_time=0.2):
    """Milliseconds of one forward pass without gradients: the median of `torch.utils.benchmark`'s blocked
    autorange (at least `min_run_time` seconds of passes; it synchronises CUDA, so kernels are timed, not launches)."""
    timer = benchmark.Timer("model(src, tgt_in)", globals={"model": model, "src": src, "tgt_in": tgt_in},
                            num_threads=torch.get_num_threads())
    with torch.no_grad():
        return timer.blocked_autorange(min_run_time=min_run_time).median * 1000


@torch.no_grad()
def attention_weights(model, src, tgt_in):
    """How many attention weights one forward pass computes, counted from the captured patterns."""
    with capture(model) as cache:
        model(src, tgt_in)
    return sum(pattern.numel() for pattern in cache.values())


def forward_cost(config, lengths, batch_size=1, min_run_time=0.2, device="cpu"):
    """One row per length: {length, forward_ms, attention_weights, activation_bytes} (+ peak_bytes on CUDA).

    Source and target both have `length` tokens; the model is `config` with max_len raised to fit.
    """
    if not lengths:
        return []
    model = cost_model(config, max(lengths) + 1).to(device)
    rows = []
    for length in lengths:
        tokens = random_tokens(config, batch_size, length).to(device)  # (B, T)
        row = {"length": length, "forward_ms": forward_ms(model, tokens, tokens, min_run_time),
               "attention_weights": attention_weights(model, tokens, tokens),
               "activation_bytes": activation_bytes(model, tokens, tokens)}
        if torch.device(device).type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            before = torch.cuda.memory_allocated(device)
            with torch.no_grad():
                model(tokens, tokens)
            row["peak_bytes"] = torch.cuda.max_memory_allocated(device) - before
        rows.append(row)
    return rows


def reference(task, text):
    """The right output for `text`: by the rule of a synthetic task, else from the task's own examples (or None)."""
    rules = {"copy": lambda s: s, "reverse": lambda s: s[::-1], "sort": lambda s: "".join(sorted(s))}
    if task.name in rules:
        return rules[task.name](text)
    if task.name == "addition" and text.count("+") == 1 and all(part.isdigit() for part in text.split("+")):
        return str(sum(int(part) for part in text.split("+")))
    return dict(task.train + task.val + task.test).get(text)


def source_ids(tokenizer, text, max_len):
    """`text` as source ids (+ EOS), or a ValueError that says which characters or how much is too much."""
    unknown = tokenizer.unknown_characters(text)
    if unknown:
        raise ValueError(_("this model does not know the characters {characters}").format(
            characters=repr("".join(unknown))))
    ids = tokenizer.encode(text) + [tokenizer.eos_id]
    if not text or len(ids) > max_len:
        raise ValueError(_("type 1 to {most} characters (got {n})").format(most=max_len - 1, n=len(text)))
    return ids


@torch.no_grad()
def translate(model, tokenizer, text):
    """The model's greedy output for `text`, as text."""
    decoded = greedy(model, tokenizer, source_ids(tokenizer, text, model.config.max_len),
                     max_new_tokens=model.config.max_len, trace=False)
    return tokenizer.decode(decoded.ids())


def error_marks(output, expected):
    """[(character, status)] position by position: "ok", "wrong", "extra" (output too long), "missing"."""
    marks = []
    for i in range(max(len(output), len(expected))):
        if i >= len(output):
            marks.append((expected[i], "missing"))
        elif i >= len(expected):
            marks.append((output[i], "extra"))
        else:
            marks.append((output[i], "ok" if output[i] == expected[i] else "wrong"))
    return marks


def is_alignment(name):
    """Cross-attention (decoder queries, source keys): a Transformer's cross_attn or the RNN's attention."""
    return ".cross_attn." in name or name.startswith("decoder.attention.")


@torch.no_grad()
def alignment(model, tokenizer, src_text, tgt_text):
    """{pattern name: (H, Tq, Tk) array} of every cross-attention while the model reads `tgt_text` (teacher
    forcing), with the labels: (source tokens + EOS, target tokens + EOS). Rows are the positions that
    predict each target token, so every model's patterns share the same grid."""
    device = next(model.parameters()).device
    src = torch.tensor([source_ids(tokenizer, src_text, model.config.max_len)], device=device)  # (1, S)
    tgt = tokenizer.encode(tgt_text)
    tgt_in = torch.tensor([[tokenizer.bos_id] + tgt], device=device)  # (1, T)
    if tgt_in.shape[1] > model.config.max_len:
        raise ValueError(_("the target is longer than this model's max_len={max_len}").format(
            max_len=model.config.max_len))
    with capture(model, [n for n in pattern_names(model) if is_alignment(n)]) as cache:
        model(src, tgt_in)
    patterns = {name: pattern[0].float().cpu().numpy() for name, pattern in cache.items()}  # each (H, T, S)
    return patterns, tokenizer.labels(src[0]), tokenizer.labels(tgt + [tokenizer.eos_id])
