"""What the Train live page shows, without Streamlit: its fields and class presets, the numbers and curves it
redraws every second, the attention time-lapse and the runs table. Every word it builds is in the session's
language (attnviz.i18n); the names a page offers as choices (class presets, user tasks) are English, marked for
the catalog, and shown translated: `format_func=_`.

    figs = curve_figures(run.snapshot())
"""
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from attnviz.app import figures
from attnviz.app.markdown import escape
from attnviz.data.tasks import LM_TASKS
from attnviz.data.tokenizers import BOS, EOS
from attnviz.i18n import N_, _
from attnviz.interpret.head_types import induction_over_training
from attnviz.interpret.patterns import parse_pattern_name
from attnviz.models.architectures import MAX_PARAMETERS, RNN_SIZES, TRANSFORMER_SIZES, architectures_for
from attnviz.training.config import TrainConfig
from attnviz.training.executor import class_runs
from attnviz.training.loop import LM_PROMPT_TOKENS
from attnviz.training.presets import PRESETS
from attnviz.training.runs import REGISTRY, thin


@dataclass(frozen=True)
class Field:
    """One number the user sets: its widget label, step and a one-line help. It has no bounds of its own: the
    library's configs (TrainConfig, the model configs, check_size) decide what is possible, and the page shows their
    refusal next to the field, so a value the user typed is never replaced by another.

    `name` and `hint` are English (marked for the catalog, or a config name like d_model that stays as it is);
    `label` and `help` are them in the session's language."""
    key: str
    name: str
    step: float = 1
    hint: str = ""

    @property
    def label(self):
        return _(self.name)

    @property
    def help(self):
        return _(self.hint) if self.hint else ""  # the catalog's empty message is its header


SIZE_FIELDS = {
    "transformer": [Field("d_model", "d_model", 8, N_("width of every token vector")),
                    Field("n_heads", N_("heads"), 1, N_("attention heads per layer; must divide d_model")),
                    Field("n_encoder_layers", N_("encoder layers"), 1),
                    Field("n_decoder_layers", N_("decoder layers"), 1),
                    Field("d_ff", "d_ff", 8, N_("width of the feed-forward layer; 0: none (attention only)"))],
    "rnn": [Field("embed_dim", N_("embedding size"), 8),
            Field("hidden_size", N_("hidden size"), 8, N_("the state the RNN carries from token to token")),
            Field("n_layers", N_("layers"), 1)],
}
TRAIN_FIELDS = [
    Field("steps", N_("steps"), 50, N_("optimiser steps (the run may end earlier: time limit)")),
    Field("time_budget", N_("time limit (s)"), 10, N_("seconds of training at most; 0 = no limit")),
    Field("batch_size", N_("batch size"), 8),
    Field("lr", N_("learning rate"), 1e-4, N_("peak learning rate; too high and the loss becomes NaN")),
    Field("warmup", N_("warm-up steps"), 10, N_("linear warm-up, then cosine decay to 10%")),
    Field("seed", N_("seed"), 1, N_("the same seed and settings train the same model")),
]
MORE_FIELDS = [
    Field("weight_decay", N_("weight decay"), 0.01),
    Field("label_smoothing", N_("label smoothing"), 0.05),
    Field("clip", N_("gradient clipping"), 0.5, N_("largest gradient norm; 0 = off")),
    Field("eval_every", N_("validate every (steps)"), 10),
    Field("snapshot_every", N_("attention snapshot every (steps)"), 5, N_("0 = no snapshots (no time-lapse)")),
]


# Class presets: a named preset with a time limit, so "30 seconds" holds on a laptop and on a GPU alike. The labels
# are the choices' values (in links too), the same in every language: a page shows them translated.
CLASS_PRESETS = {
    N_("30-second demo: reverse letters (Transformer)"): ("reverse-transformer", 30),
    N_("30-second demo: copy letters, the diagonal (Transformer)"): ("copy-transformer", 30),
    N_("1 minute: reverse with an LSTM and Bahdanau attention"): ("reverse-lstm+bahdanau", 60),
    N_("1 minute: reverse with a plain LSTM (no attention)"): ("reverse-lstm", 60),
    N_("2 minutes: dates to ISO, cross-attention alignments"): ("dates-transformer", 120),
    N_("2 minutes: a language model over Python's docs"): ("pydoc-lm", 120),
    N_("90 seconds: watch an induction head form (attention-only, 2 layers)"): ("induction-lm", 90),
}
USER_TASKS = {"text": N_("text file"), "pairs": N_("TSV file of source<TAB>target lines")}


def size_fields(architecture):
    family = "transformer" if architecture in ("transformer", "lm") else "rnn"
    return [f for f in SIZE_FIELDS[family] if not (architecture == "lm" and f.key == "n_encoder_layers")]


def task_architectures(task_name):
    """The architectures that fit a task: language models for text, encoder-decoders for the rest."""
    return architectures_for("lm" if task_name in LM_TASKS else "seq2seq")


def preset_settings(label):
    """Every setting of a class preset or a named preset, keyed like the fields (plus task, architecture)."""
    name, seconds = CLASS_PRESETS.get(label, (label, 0))
    preset = PRESETS[name]
    defaults = {f.key: getattr(TrainConfig, f.key) for f in TRAIN_FIELDS + MORE_FIELDS}
    sizes = {**TRANSFORMER_SIZES, **RNN_SIZES, **preset.sizes}  # both families, so switching architecture works
    settings = {"task": preset.task, "architecture": preset.architecture, **defaults, **preset.train,
                "time_budget": seconds, **sizes}
    numbers = {f.key: type(f.step)
               for f in [*SIZE_FIELDS["transformer"], *SIZE_FIELDS["rnn"], *TRAIN_FIELDS, *MORE_FIELDS]}
    return {key: numbers[key](value) if key in numbers else value  # int or float, as the widget takes it
            for key, value in settings.items() if key != "max_len"}


def preset_for_task(label, task_name):
    """The preset to show once the task is `task_name`: `label` if its preset trains that task, else the first
    preset that does, else (your own text or pairs) the first whose architecture fits the task."""
    fits = [l for l in preset_labels() if PRESETS[preset_name(l)].task == task_name] or \
        [l for l in preset_labels() if PRESETS[preset_name(l)].architecture in task_architectures(task_name)]
    return label if label in fits else fits[0]


def name_base(label, task_name, architecture):
    """What a run's suggested name starts with: the preset's name while the form trains its task and architecture,
    else task-architecture ("dates-lstm")."""
    preset = PRESETS[preset_name(label)]
    return preset_name(label) if (preset.task, preset.architecture) == (task_name, architecture) \
        else f"{task_name}-{architecture}"


def preset_fixed_sizes(label, architecture):
    """The sizes a preset sets that have no field (say positional="learned"), while its own architecture is chosen:
    they go with the fields' values into the run (max_len is worked out from the task)."""
    preset = PRESETS[preset_name(label)]
    fields = {f.key for f in size_fields(preset.architecture)}
    return {key: value for key, value in preset.sizes.items() if key not in fields and key != "max_len"} \
        if architecture == preset.architecture else {}


def preset_labels():
    """Class presets first, then every named preset."""
    return list(CLASS_PRESETS) + list(PRESETS)


def preset_name(label):
    return CLASS_PRESETS.get(label, (label,))[0]


def refused_field(error, fields):
    """The field among `fields` that a refusal is about (the library's SettingError names its config field), or
    None when it is about the form as a whole (the model's size, the name, the task)."""
    return next((f for f in fields if f.key == getattr(error, "field", None)), None)


def size_note(n_parameters):
    return _("{parameters} parameters (the limit here is {limit})").format(
        parameters=f"{n_parameters:,}", limit=f"{MAX_PARAMETERS:,}")


CLUSTER_WAIT = N_("waiting for a free worker on the cluster")
STATUS_WORDS = {"queued": N_("queued"), "running": N_("training"), "done": N_("done"), "stopped": N_("stopped"),
                "failed": N_("failed"), "diverged": N_("diverged")}  # a run's status (attnviz.training) as shown


def status_word(status):
    return _(STATUS_WORDS[status]) if status in STATUS_WORDS else status


def status_text(run, status, queue_position):
    """'training', 'queued (place 2)', 'waiting for a free worker on the cluster' (queued by Ray, not here),
    'saving' (ended, checkpoint being written), 'done', 'stopped', ..."""
    if status == "queued":
        return _("queued (place {place})").format(place=queue_position) if queue_position else _(CLUSTER_WAIT)
    if status in ("done", "stopped") and not run.done:
        return _("saving")
    return status_word(status)


def time_left(snap, config):
    """Seconds of training still to go, estimated from the pace so far (None before the first step)."""
    if snap.step == 0 or snap.elapsed <= 0:
        return None
    left = (snap.steps - snap.step) * snap.elapsed / snap.step
    return min(left, max(0.0, config.time_budget - snap.elapsed)) if config.time_budget else left


def best_metric(evals, kind):
    """The best validation result so far, (name, value as text): exact match for seq2seq, perplexity for an LM;
    None before the first validation."""
    if kind == "lm" and evals.get("perplexity"):
        return _("perplexity"), f"{min(evals['perplexity']):.2f}"
    if evals.get("exact_match"):
        return _("exact match"), f"{max(evals['exact_match']):.1%}"
    return None


def run_metrics(run, snap, active):
    """{label: value as text} of a run's panel: status, step, time left (while `active`), best result, device."""
    left = time_left(snap, run.config)
    best = best_metric(snap.evals, run.task.kind)
    device = snap.device.upper()
    return {_("Status"): status_word("queued") if snap.status == "queued"
            else status_text(run, snap.status, snap.queue_position),
            _("Step"): f"{snap.step} / {snap.steps}",
            _("Time left"): "–" if left is None or not active else _("~{seconds} s").format(seconds=f"{left:.0f}"),
            _("Best {metric}").format(metric=best[0]) if best else _("Best so far"): best[1] if best else "–",
            _("Device"): _("{device} on {node}").format(device=device, node=snap.node) if snap.node else device}


def run_notices(run, snap):
    """[(level, Markdown)] to show under a run's numbers, level being "info", "error" or "success"."""
    notices = []
    if snap.status == "queued":
        notices.append(("info", _("Waiting for a free slot: you are number {place} in the queue.").format(
            place=snap.queue_position) if snap.queue_position
            else _("Waiting for a free worker on the cluster: every worker is busy.")))
    if snap.node:
        notices.append(("info", _("Training on the cluster node {node}.").format(node=escape(snap.node))))
    if snap.error:  # it may quote what the user typed (a worker's exception)
        notices.append(("error", escape(snap.error)))
    if snap.saved_path and snap.status != "diverged":
        notices.append(("success", _("Saved as **{name}**: pick it in the model picker in the sidebar, on every "
                                     "page.").format(name=escape(run.name))))
    return notices


def smoothed(values, weight=0.9):
    """An exponential moving average, bias-corrected, so a noisy training loss reads as a curve."""
    out, average = [], 0.0
    for i, value in enumerate(values, start=1):
        average = weight * average + (1 - weight) * value
        out.append(average / (1 - weight ** i))
    return out


def curve_figures(snap, max_points=400):
    """{'loss', 'accuracy', 'lr', 'speed'}: plotly figures of a run's history and validation so far."""
    h, e = snap.history, snap.evals
    keep = thin(list(range(len(h["step"]))), max_points)
    pick = lambda values: [values[i] for i in keep]
    train_loss, step = smoothed(h["loss"]), _("step")
    accuracy = {_("validation token accuracy"): (e["step"], e.get("token_accuracy", []))}
    if "exact_match" in e:
        accuracy[_("validation exact match")] = (e["step"], e["exact_match"])
    return {
        "loss": figures.curves([], {_("training (moving average)"): (pick(h["step"]), pick(train_loss)),
                                    _("validation"): (e["step"], e.get("loss", []))},
                               _("Loss"), step, _("cross entropy (without label smoothing)"), log_y=bool(h["loss"])),
        "accuracy": figures.curves([], accuracy, _("Accuracy"), step, _("fraction")),
        "lr": figures.curves(pick(h["step"]), {_("learning rate"): pick(h["lr"])}, _("Learning rate"), step),
        "speed": figures.curves(pick(h["step"]), {_("tokens per second"): pick(h["tokens_per_s"])},
                                _("Speed (target tokens per second of training)"), step),
    }


def probe_ids(task, probe):
    """(source ids or None, decoder-input ids) of one probe, exactly as the snapshots saw it."""
    example = task.probes[probe]
    if task.kind == "lm":
        return None, [BOS, *example[:-1]]
    src, tgt = example
    return task.tokenizer.encode(src) + [EOS], [BOS] + task.tokenizer.encode(tgt)


def probe_label(task, probe):
    example = task.probes[probe]
    if task.kind == "lm":
        return task.tokenizer.decode(example[:LM_PROMPT_TOKENS]) + "…"
    return f"{example[0]} → {example[1]}"


def probe_target(task, probe):
    """What a perfect model outputs for a probe (an LM: the text that really follows its prompt)."""
    example = task.probes[probe]
    if task.kind == "lm":
        return task.tokenizer.decode(example[LM_PROMPT_TOKENS:])[:60]
    return example[1]


def attention_kinds(patterns):
    """{kind: number of layers} of a snapshot's patterns, e.g. {'encoder self': 1, 'cross': 1}."""
    kinds = {}
    for name in patterns:
        kind, layer, _hook = parse_pattern_name(name)
        kinds[kind] = max(kinds.get(kind, 0), layer + 1)
    return kinds


def lapse_pattern(task, patterns, probe, kind, layer):
    """One probe's attention of one kind and layer: ((H, Tq, Tk) weights, query labels, key labels, mask)."""
    name = next(n for n in patterns if parse_pattern_name(n)[:2] == (kind, layer))
    src, tgt = probe_ids(task, probe)
    queries, keys = {"encoder self": (src, src), "decoder self": (tgt, tgt), "cross": (tgt, src)}[kind]
    weights = patterns[name][probe, :, :len(queries), :len(keys)].astype(np.float32)  # (H, Tq, Tk)
    causal = np.triu(np.ones((len(queries), len(keys)), dtype=bool), 1) if kind == "decoder self" else None
    return weights, task.tokenizer.labels(queries), task.tokenizer.labels(keys), causal


HISTORY_COLUMNS = [N_("step"), N_("output"), N_("right")]


def output_history(task, snapshots, probe, upto):
    """The probe's greedy output at every snapshot up to index `upto`, newest first; for seq2seq also whether it
    is right (a language model's continuation has no single right answer). Headers in the session's language."""
    target = probe_target(task, probe)
    table = pd.DataFrame([{"step": s["step"], "output": s["outputs"][probe], "right": s["outputs"][probe] == target}
                          for s in snapshots[:upto + 1][::-1] if "outputs" in s], columns=HISTORY_COLUMNS)
    return (table if task.kind == "seq2seq" else table.drop(columns="right")).rename(columns=_)


def run_row(run, viewer):
    """One line of the runs table, read under the run's lock without copying its history: who trained it ("you"
    for the `viewer`'s own runs, else the name they gave or their anonymous label; never a token)."""
    position = run.registry.position(run)
    with run.lock:
        result = run.result
        status, step, elapsed = result.status, result.step, result.elapsed
        best = " ".join(best_metric(result.evals, run.task.kind) or ())
    return {"who": _("you") if run.owner == viewer else run.trained_by or "–", "model": run.name,
            "task": run.task.name, "architecture": run.extra_meta.get("arch", "?"),
            "status": status_text(run, status, position), "step": f"{step}/{run.config.steps}", "best": best,
            "time": _("{seconds} s").format(seconds=f"{elapsed:.0f}"),
            "started": datetime.fromtimestamp(run.started_at).strftime("%H:%M")}


def other_server_row(record):
    """A run of another web server of the class, as its record on the cluster's registry tells it."""
    status = _(CLUSTER_WAIT) if record["status"] == "queued" else status_word(record["status"])
    return {"who": record["owner"] or "–", "model": record["name"], "task": "–", "architecture": "–",
            "status": _("{status} on {node}").format(status=status, node=record["node"]) if record["node"] else status,
            "step": f"{record['step']}/{record['steps']}", "best": "", "time": "",
            "started": _("on {server}").format(server=record["server"])}


RUNS_COLUMNS = [N_("who"), N_("model"), N_("task"), N_("architecture"), N_("status"), N_("step"), N_("best"),
                N_("time"), N_("started")]


def runs_table(viewer, registry=REGISTRY, limit=50, shared=class_runs):
    """The latest runs of this server (of any tab), newest first, as the browser with owner token `viewer` sees
    them; on a Ray cluster, then those of the class's other web servers (`shared()` gives their records)."""
    with registry.condition:
        runs = list(registry.runs)[-limit:][::-1]
    rows = [run_row(run, viewer) for run in runs]
    ours = {run.name for run in runs}
    rows += [other_server_row(r) for r in (shared() or [])[:limit] if r["name"] not in ours]
    return pd.DataFrame(rows, columns=RUNS_COLUMNS).rename(columns=_)


HALVES = (N_("first half loss"), N_("repeated half loss"))  # columns of induction_over_training, as shown


def induction_figures(task, snapshots):
    """{'heads', 'halves'}: on the induction task, every head's induction score over training, and the probes' loss
    on their first half (unpredictable) and on their repeated half (falls once an induction head has formed)."""
    curve = induction_over_training(task, snapshots)
    heads = {column: curve[column].tolist() for column in curve.columns if column[:1] == "L" and "H" in column}
    halves = {_(name): curve[name].tolist() for name in HALVES if name in curve}
    return {"heads": figures.curves(curve["step"], heads, _("Induction score per head"), _("step"), _("score")),
            "halves": figures.curves(curve["step"], halves, _("Probe loss by half"), _("step"), _("cross-entropy"))}
