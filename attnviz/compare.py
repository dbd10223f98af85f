"""Comparing models on one task: accuracy by length, cost by length, the same input through each model.

    found = contenders("reverse-long")                              # the three shipped models of a task
    runs = start_runs("reverse", owner="3f2a9c1b", seed=0)           # or train all three here (saved when done)
    rows = accuracy_by_length(model, task, lengths=[4, 8, 16, 32])   # beyond the trained lengths too
    rows = forward_cost(model, [16, 64, 256, 1024])                  # time and memory of one forward pass
    text = translate(model, tokenizer, "hello"); marks = error_marks(text, reference(task, "hello"))
    patterns = alignment(model, tokenizer, "hello", "olleh")         # cross-attention on a shared grid

Accuracy by length draws fresh examples of each length from the task's own generator (same alphabet, same
tokenizer, so token ids match the model's). A length the model cannot read (a Transformer's positional
table ends at `config.max_len`; decoding an RNN stops there too) gives a row that says so instead of failing.

Cost is measured on the machine at hand, on a batch of random tokens with source and target of the same length:
- `forward_ms`: wall-clock milliseconds of one forward pass without gradients (the fastest of several).
- `attention_weights`: how many attention weights the forward pass computes (each Transformer head
  T x T in every attention module, the RNN's one T x T alignment), counted by capturing them. This is
  the quadratic term: a fused attention kernel computes all of them even when it never stores them.
- `activation_bytes`: bytes of the tensors autograd keeps from the forward pass for the backward pass of a
  training step (each storage counted once, parameters not counted), found with
  `torch.autograd.graph.saved_tensors_hooks`. It works the same on every device, unlike the CPU's
  allocator, which has no peak statistics. On CUDA `peak_bytes` adds the allocator's peak for the forward.
"""
import html
import statistics
import time
import uuid
from dataclasses import dataclass, replace

import torch

from attnviz import build_model, checkpoint
from attnviz.decoding import greedy
from attnviz.hooks import capture, pattern_names
from attnviz.presets import build_preset
from attnviz.tasks import task_from_spec
from attnviz.train import REGISTRY, TrainingRun, batch_metrics, logits_of, train

LABELS = {"transformer": "Transformer", "lstm+attention": "LSTM + attention", "lstm": "LSTM"}
# Tasks with three presets, TASK-transformer, TASK-lstm+attention and TASK-lstm, trained on identical data.
TASKS = {"reverse": "Reverse letters (abc → cba)", "reverse-long": "Reverse, lengths 4-24",
         "dates": "Normalise dates (23 Nov 2026 → 2026-11-23)"}


def checkpoint_name(task_key, architecture, owner=""):
    """Where `python -m attnviz train --preset TASK-ARCHITECTURE` saves (e.g. reverse-lstm-attention), with
    `-owner` added for the runs trained on the page (reverse-lstm-attention-3f2a9c1b)."""
    return f"{task_key}-{architecture.replace('+', '-')}" + (f"-{owner}" if owner else "")


# ---------------------------------------------------------------------------------------------
# Accuracy by sequence length


def trained_lengths(task):
    """(min_len, max_len) of a task with a length parameter (copy, reverse, sort, addition), else None."""
    return (task.params["min_len"], task.params["max_len"]) if "min_len" in task.params else None


def lengths_up_to(task, longest=None):
    """About 16 lengths from 2 to `longest` (default: 8 past the longest trained length), both trained ends included."""
    low, high = trained_lengths(task)
    longest = longest or high + 8
    return sorted({*range(2, longest + 1, max(1, longest // 16)), low, high, longest})


def examples_of_length(task, length, n=200, seed=1):
    """Up to n new examples of `task` whose length parameter is exactly `length`, in the task's tokens."""
    alphabet = task.params.get("alphabet")
    distinct = len(alphabet) ** length if alphabet else 10 ** (2 * length)  # letters, or two numbers of `length` digits
    params = {**task.params, "min_len": length, "max_len": length, "n_train": 1, "n_val": 1,
              "n_test": max(1, min(n, distinct // 2))}
    return task_from_spec({"name": task.name, "seed": seed, "params": params}, task.tokenizer).test


@torch.no_grad()
def score(model, task, examples, batch_size=256):
    """Exact match and token accuracy of teacher-forced argmax (= greedy decoding) on `examples`."""
    was_training, device = model.training, next(model.parameters()).device
    model.eval()
    totals = [0.0] * 5
    for i in range(0, len(examples), batch_size):
        batch = task.collate(examples[i:i + batch_size]).to(device)
        totals = [t + x for t, x in zip(totals, batch_metrics(logits_of(model, batch), batch, model.config.pad_id))]
    model.train(was_training)
    _, right, tokens, exact, sequences = totals
    return {"exact_match": exact / max(1, sequences), "token_accuracy": right / max(1, tokens)}


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
        needed = widest(task, examples)
        if needed > model.config.max_len:
            row["note"] = f"beyond max_len: needs {needed} positions, the model has {model.config.max_len}"
        else:
            row.update(score(model, task, examples))
        rows.append(row)
    return rows


LENGTH_CLAIM = ("Bahdanau et al. (2015) found that squeezing a whole sentence into one fixed-size vector gets worse "
                "as sentences get longer, and that attention fixes it.")
BEYOND_TEXT = (
    "Here are the models on fresh examples of every length. The plain LSTM must carry the whole input in its final "
    "state, so each extra letter crowds the others out and its exact match falls with length; the attention models "
    "look every letter up again when they need it. Outside the green band every model is on new ground, and the "
    "Transformer meets positions it never saw in training.")
GROUPED_TEXT = "Here the test set is grouped by the length of the source: all of these lengths occur in training."
LENGTH_SOURCES = (
    "Fresh examples of each length (200 where that many exist), scored as greedy decoding would. Cho et al. (2014, "
    "“On the properties of neural machine translation: encoder-decoder approaches”) saw an encoder-decoder "
    "without attention fail on long sentences; Bahdanau et al. (2015, “Neural machine translation by jointly "
    "learning to align and translate”) added attention and the fall went away.")


def trend(rows, low, high, metric="exact_match"):
    """One sentence: each model's `metric` at lengths `low` and `high`, from {label: rows of accuracy_by_length}."""
    at = lambda rs, length: next((r[metric] for r in rs if r["length"] == length and r[metric] is not None), None)
    parts = [f"{label} {at(rs, low):.0%} → {at(rs, high):.0%}" for label, rs in rows.items()
             if at(rs, low) is not None and at(rs, high) is not None]
    return f"Exact match from length {low} to length {high}: {', '.join(parts)}." if parts else ""


def by_length(rows, metric, scale=1.0):
    """{label: (lengths, values)} from {label: rows of one of the by-length functions}, for `figures.curves`;
    rows without a value (beyond max_len) are left out."""
    return {label: ([r["length"] for r in rs if r[metric] is not None],
                    [r[metric] * scale for r in rs if r[metric] is not None]) for label, rs in rows.items()}


# ---------------------------------------------------------------------------------------------
# Cost by sequence length


COST_NOTE = (
    "One forward pass of batch 1, source and target of the same length, on this machine's device, with the "
    "model's own sizes. Attention weights: every head scores every query against every key, T × T per attention "
    "module, so they grow with the square of the length; the Transformer has three attention modules (encoder "
    "self-, decoder self- and cross-attention), the LSTM + attention one, the plain LSTM none. Activations: the "
    "bytes a training step keeps from the forward pass for the backward pass. PyTorch's fused attention kernel "
    "computes all T × T weights but never stores them, so the Transformer's activations grow about linearly; "
    "the additive attention of the LSTM keeps a T × T × hidden tensor. Time is wall-clock, the fastest of "
    "several passes: other work on a busy machine still makes it noisy.")


def cost_model(config, longest, seed=0):
    """A fresh model of `config` (weights do not change the cost) that reads `longest` tokens, in eval mode."""
    torch.manual_seed(seed)
    return build_model(replace(config, max_len=max(config.max_len, longest))).eval()


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


@torch.no_grad()
def forward_ms(model, src, tgt_in, repeats=3, budget=0.2):
    """Wall-clock milliseconds of a forward pass: the fastest of at least `repeats` passes (more while they
    take under `budget` seconds in all), after a warm-up pass. The fastest is the one other work disturbed least."""
    model(src, tgt_in)
    times, started = [], time.perf_counter()
    while len(times) < repeats or (time.perf_counter() - started < budget and len(times) < 20):
        start = time.perf_counter()
        model(src, tgt_in)
        times.append((time.perf_counter() - start) * 1000)
    return min(times)


@torch.no_grad()
def attention_weights(model, src, tgt_in):
    """How many attention weights one forward pass computes, counted from the captured patterns."""
    with capture(model) as cache:
        model(src, tgt_in)
    return sum(pattern.numel() for pattern in cache.values())


def forward_cost(config, lengths, batch_size=1, repeats=3, device="cpu"):
    """One row per length: {length, forward_ms, attention_weights, activation_bytes} (+ peak_bytes on CUDA).

    Source and target both have `length` tokens; the model is `config` with max_len raised to fit.
    """
    if not lengths:
        return []
    model = cost_model(config, max(lengths) + 1).to(device)
    rows = []
    for length in lengths:
        tokens = random_tokens(config, batch_size, length).to(device)  # (B, T)
        row = {"length": length, "forward_ms": forward_ms(model, tokens, tokens, repeats),
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


# ---------------------------------------------------------------------------------------------
# The same input through several models


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
        raise ValueError(f"this model does not know the characters {''.join(unknown)!r}")
    ids = tokenizer.encode(text) + [tokenizer.eos_id]
    if not text or len(ids) > max_len:
        raise ValueError(f"type 1 to {max_len - 1} characters (got {len(text)})")
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


MARK_STYLES = {"ok": "", "wrong": "background:#f6b8b8", "extra": "background:#fcd9a8",
               "missing": "background:#ddd;color:#777"}
MARKS_NOTE = "Red: wrong character, orange: one too many, grey: missing."


def marked_html(output, expected=None):
    """`output` as HTML inline code, each character coloured by its `error_marks` status (unmarked without `expected`)."""
    marks = error_marks(output, expected) if expected is not None else [(ch, "ok") for ch in output]
    return "<code>" + "".join(f'<span style="{MARK_STYLES[status]}">{html.escape(ch)}</span>'
                              for ch, status in marks) + "</code>"


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
        raise ValueError(f"the target is longer than this model's max_len={model.config.max_len}")
    with capture(model, [n for n in pattern_names(model) if is_alignment(n)]) as cache:
        model(src, tgt_in)
    patterns = {name: pattern[0].float().cpu().numpy() for name, pattern in cache.items()}  # each (H, T, S)
    return patterns, tokenizer.labels(src[0]), tokenizer.labels(tgt + [tokenizer.eos_id])


# ---------------------------------------------------------------------------------------------
# Training records side by side


@dataclass
class Contender:
    """One model in a comparison, with the record of its training (from a checkpoint's meta or a live run)."""
    label: str  # "Transformer", "LSTM + attention", "LSTM"
    model: torch.nn.Module
    task: object  # the task it was trained on, with its tokenizer
    history: dict  # per training step: "step", "loss", "time" (seconds of training) ...
    evals: dict  # per evaluation: "step", "time", "exact_match", "token_accuracy", "loss"
    key: str = ""  # names these trained weights, for caches (e.g. a checkpoint's path and time)

    @classmethod
    def from_checkpoint(cls, label, ckpt):
        meta = ckpt.meta
        return cls(label, ckpt.model, ckpt.task(), meta.get("history") or {}, meta.get("evals") or {},
                   f"{ckpt.path}@{meta.get('created')}")

    @classmethod
    def from_run(cls, label, run):
        """A finished `TrainingRun`'s model (put in eval mode) and record."""
        snap = run.snapshot()
        return cls(label, run.model.eval(), run.task, snap.history, snap.evals, f"{run.name}@{run.started_at}")

    @property
    def parameters(self):
        return sum(p.numel() for p in self.model.parameters())

    @property
    def ms_per_step(self):
        """Median milliseconds of a training step (evaluation excluded), or None without a record."""
        times = self.history.get("time") or []
        steps = [b - a for a, b in zip(times, times[1:])]
        return 1000 * statistics.median(steps) if steps else None


def curve(contenders, metric, x="step"):
    """{label: (x values, metric values)} for `figures.curves`: "loss" per training step (the training
    loss), any other metric per evaluation (validation)."""
    series = {}
    for c in contenders:
        record = c.history if metric == "loss" else c.evals
        if record.get(metric):
            series[c.label] = (record[x][:len(record[metric])], record[metric])
    return series


def summary(contenders):
    """One row per model: parameters, steps, seconds of training, ms per step, last validation exact match."""
    rows = []
    for c in contenders:
        steps, times, exact = c.history.get("step") or [0], c.history.get("time") or [0.0], c.evals.get("exact_match")
        rows.append({"model": c.label, "parameters": c.parameters, "steps": steps[-1], "train seconds": times[-1],
                     "ms per step": c.ms_per_step, "val exact match": exact[-1] if exact else None})
    return rows


def time_to_target(preset, seed=0, target=0.99, clock=time.perf_counter):
    """Train a preset until validation exact match reaches `target` (or its steps run out); one row of results.

    Seconds are training time by `clock`, evaluations excluded, as `train` measures them: wall-clock by
    default; `time.process_time` gives CPU time, which a machine busy with other work inflates far less.
    `seconds_to_target` and `steps_to_target` are None when the target was missed (`reached` False); the
    target is checked every `eval_every` steps of the preset. No attention snapshots are taken."""
    task, model, config = build_preset(preset, seed)
    result = train(model, task, replace(config, target_exact_match=target, snapshot_every=0), clock=clock)
    reached = [step for step, exact in zip(result.evals["step"], result.evals["exact_match"]) if exact >= target]
    return {"preset": preset, "seed": seed, "parameters": sum(p.numel() for p in model.parameters()),
            "target": target, "reached": bool(reached), "seconds_to_target": result.reached_target_at,
            "steps_to_target": reached[0] if reached else None, "steps_run": result.step, "steps": config.steps,
            "seconds_run": result.elapsed, "ms_per_step": 1000 * result.elapsed / max(1, result.step),
            "val_exact_match": result.evals["exact_match"][-1]}


# ---------------------------------------------------------------------------------------------
# The three models of a task: the shipped checkpoints, or trained on the page (saved as checkpoints)


def session_id(text=None):
    """`text` if it can end a checkpoint name (letters, digits, up to 16), else a new random id."""
    return text if text and text.isalnum() and text.isascii() and len(text) <= 16 else uuid.uuid4().hex[:8]


def start_runs(task_key, owner, seed=0, registry=REGISTRY):
    """Start the three presets of `task_key` (same data, same seed) in the training queue: {architecture: run}.
    Each run saves itself as `checkpoint_name(task_key, architecture, owner)` when it ends."""
    runs = {}
    for architecture in LABELS:
        preset = f"{task_key}-{architecture}"
        task, model, config = build_preset(preset, seed)
        runs[architecture] = TrainingRun(model, task, config, name=checkpoint_name(task_key, architecture, owner),
                                         owner=owner, save=True, registry=registry,
                                         extra_meta={"preset": preset, "arch": architecture, "owner": owner})
    return {architecture: run.start() for architecture, run in runs.items()}


def runs_of(task_key, owner, registry=REGISTRY):
    """{architecture: the newest run of this process under its page name} (architectures without one left out)."""
    runs = {a: registry.find(checkpoint_name(task_key, a, owner)) for a in LABELS}
    return {a: run for a, run in runs.items() if run is not None}


def stop_runs(runs):
    for run in runs.values():
        run.stop(0)


def contenders(task_key, owner="", load=None, registry=REGISTRY):
    """{label: Contender} of the models of `task_key` that trained at least one step: the shipped checkpoints
    (no owner), or those trained on the page by `owner`. A run of this process counts once it has ended (a run
    stopped before its first step does not count, even over an older checkpoint of its name); without a run,
    the saved checkpoint, loaded by `load(info)` from its `CheckpointInfo` (the app passes `ui.load_model`, which
    caches; by default `checkpoint.load_checkpoint`)."""
    load = load or (lambda info: checkpoint.load_checkpoint(info.path))
    infos = {info.name: info for info in checkpoint.list_checkpoints() if info.shipped == (not owner)}
    found = {}
    for architecture, label in LABELS.items():
        name = checkpoint_name(task_key, architecture, owner)
        run = registry.find(name) if owner else None
        if run is not None:
            contender = Contender.from_run(label, run) if run.done else None
        else:
            contender = Contender.from_checkpoint(label, load(infos[name])) if name in infos else None
        if contender is not None and contender.history.get("step"):
            found[label] = contender
    return found
