"""The three models of a comparison task (Transformer, LSTM + Bahdanau attention, plain LSTM): the shipped
checkpoints, or trained here by one owner, with the record of their training side by side.

    found = find_contenders("reverse-long")                            # the three shipped models of a task
    runs = start_runs("reverse", owner=token, seed=0)                  # or train all three here (saved when done)

An owner's three models are named after their short id (reverse-lstm-4b1e0c, attnviz.training.owners): one set per
browser, claimed before they train, so nobody's comparison can replace another's. LABELS and TASKS are English,
marked for the catalog (attnviz.i18n): a page shows them as `_(LABELS[architecture])`.
"""
import statistics
import time
from dataclasses import dataclass, replace

import torch

from attnviz.i18n import N_
from attnviz.training.checkpoint import load_checkpoint
from attnviz.training.checkpoint_folder import CheckpointError
from attnviz.training.checkpoint_list import list_checkpoints
from attnviz.training.checkpoint_names import claim_name
from attnviz.training.loop import train
from attnviz.training.owners import anonymous_label, owner_of, short_id
from attnviz.training.presets import build_preset
from attnviz.training.runs import REGISTRY, TrainingRun


LABELS = {"transformer": N_("Transformer"), "lstm+bahdanau": N_("LSTM + Bahdanau attention"),
          "lstm": N_("LSTM, no attention")}


# Tasks with three presets, TASK-transformer, TASK-lstm+bahdanau and TASK-lstm, trained on identical data.
TASKS = {"reverse": N_("Reverse letters (abc → cba)"), "reverse-long": N_("Reverse, lengths 4-24"),
         "dates": N_("Normalise dates (23 Nov 2026 → 2026-11-23)")}


def checkpoint_name(task_key, architecture, owner=""):
    """The shipped model of a preset TASK-ARCHITECTURE (e.g. reverse-lstm-bahdanau), or with the owner's short id
    added, that owner's model trained on the page (reverse-lstm-bahdanau-4b1e0c)."""
    return f"{task_key}-{architecture.replace('+', '-')}" + (f"-{short_id(owner)}" if owner else "")


@dataclass
class Contender:
    """One model in a comparison, with the record of its training (from a checkpoint's meta or a live run)."""
    label: str  # a value of LABELS
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


def time_to_target(preset, seed=0, target=0.99, clock=time.perf_counter, device="auto"):
    """Train a preset until validation exact match reaches `target` (or its steps run out); one row of results.

    Seconds are training time by `clock`, evaluations excluded, as `train` measures them: wall-clock by
    default; `time.process_time` gives CPU time, which a machine busy with other work inflates far less.
    `seconds_to_target` and `steps_to_target` are None when the target was missed (`reached` False); the
    target is checked every `eval_every` steps of the preset. No attention snapshots are taken."""
    task, model, config = build_preset(preset, seed)
    result = train(model, task, replace(config, target_exact_match=target, snapshot_every=0, device=device), clock=clock)
    reached = [step for step, exact in zip(result.evals["step"], result.evals["exact_match"]) if exact >= target]
    return {"preset": preset, "seed": seed, "parameters": sum(p.numel() for p in model.parameters()),
            "target": target, "reached": bool(reached), "seconds_to_target": result.reached_target_at,
            "steps_to_target": reached[0] if reached else None, "steps_run": result.step, "steps": config.steps,
            "seconds_run": result.elapsed, "ms_per_step": 1000 * result.elapsed / max(1, result.step),
            "val_exact_match": result.evals["exact_match"][-1]}


def claim_names(task_key, owner):
    """{architecture: NameClaim} on the three names of `owner`'s models of `task_key`, all or none: a
    CheckpointError (and nothing held) when one is being written now or holds someone else's model."""
    claims = {}
    try:
        for architecture in LABELS:
            claims[architecture] = claim_name(checkpoint_name(task_key, architecture, owner), owner)
    except CheckpointError:
        for claim in claims.values():
            claim.release()
        raise
    return claims


def start_runs(task_key, owner, seed=0, registry=REGISTRY):
    """Start the three presets of `task_key` (same data, same seed) for `owner` (a browser's token) in the
    training queue: {architecture: run}. Their names are claimed first (`claim_names`); each run saves itself as
    `checkpoint_name(task_key, architecture, owner)` when it ends, replacing only the owner's own earlier model."""
    claims = claim_names(task_key, owner)
    runs = {}
    for architecture, claim in claims.items():
        preset = f"{task_key}-{architecture}"
        task, model, config = build_preset(preset, seed)
        runs[architecture] = TrainingRun(model, task, config, name=claim.path.name, owner=owner, save=True,
                                         registry=registry, extra_meta={"preset": preset, "arch": architecture},
                                         trained_by=anonymous_label(owner), claim=claim)
    return {architecture: run.start() for architecture, run in runs.items()}


def runs_of(task_key, owner, registry=REGISTRY):
    """{architecture: the newest run of this process of `owner`'s models} (architectures without one left out)."""
    runs = {a: registry.find(checkpoint_name(task_key, a, owner)) for a in LABELS}
    return {a: run for a, run in runs.items() if run is not None and run.owner == owner}


def stop_runs(runs, owner):
    for run in runs.values():
        run.stop(owner, 0)


def find_contenders(task_key, owner="", load=None, registry=REGISTRY):
    """{label: Contender} of the models of `task_key` that trained at least one step: the shipped checkpoints
    (no owner), or those trained on the page by `owner`. A run of this process counts once it has ended (a run
    stopped before its first step does not count, even over an older checkpoint of its name); without a run,
    the saved checkpoint, loaded by `load(info)` from its `CheckpointInfo` (the app passes `ui.load_model`, which
    caches; by default `load_checkpoint`)."""
    load = load or (lambda info: load_checkpoint(info.path))
    infos = {info.name: info for info in list_checkpoints()
             if (info.shipped if not owner else not info.shipped and owner_of(info.meta) == owner)}
    runs, found = runs_of(task_key, owner, registry) if owner else {}, {}
    for architecture, label in LABELS.items():
        name = checkpoint_name(task_key, architecture, owner)
        run = runs.get(architecture)
        if run is not None:
            contender = Contender.from_run(label, run) if run.done else None
        else:
            contender = Contender.from_checkpoint(label, load(infos[name])) if name in infos else None
        if contender is not None and contender.history.get("step"):
            found[label] = contender
    return found
