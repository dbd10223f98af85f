"""Presets: tested recipes (task, architecture, sizes, training settings) that the CLI and the pages offer.

    task, model, train_config = build_preset("reverse-transformer")

A preset's description is English, marked for the catalog: show it as `_(preset.description)` (attnviz.i18n).
"""
from dataclasses import dataclass, field

import torch

from attnviz.data.tasks import make_task
from attnviz.i18n import N_, _
from attnviz.models.architectures import build_model, check_size, kind_of, model_config
from attnviz.training.config import TrainConfig


@dataclass(frozen=True)
class Preset:
    description: str
    task: str
    architecture: str
    sizes: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    task_params: dict = field(default_factory=dict)


FAST = {"batch_size": 64, "lr": 3e-3, "warmup": 20, "eval_every": 25, "snapshot_every": 25}
REVERSE = {**FAST, "steps": 350}  # measured with `python -m attnviz bench --only preset_time_to_accuracy`
PROSE_SIZES = {"d_model": 128, "n_heads": 4, "n_decoder_layers": 4, "d_ff": 512, "max_len": 160,
               "tie_embeddings": True}
LM_TRAIN = {"batch_size": 24, "lr": 3e-3, "warmup": 200, "eval_every": 500, "snapshot_every": 250, "eval_examples": 200}
LONG = {"min_len": 4, "max_len": 24, "n_train": 10000}  # lengths where a fixed-size context vector falls behind
PRESETS = {
    "reverse-transformer": Preset(N_("Reverse letters with a one-layer Transformer (about 5 s on a CPU core)"),
                                  "reverse", "transformer", {}, {**REVERSE, "lr": 7e-3}),
    "reverse-lstm+bahdanau": Preset(N_("Reverse letters with an LSTM and Bahdanau attention (the context feeds the "
                                       "recurrence)"), "reverse", "lstm+bahdanau", {}, {**REVERSE, "lr": 1e-2}),
    "reverse-lstm+luong": Preset(N_("Reverse letters with an LSTM and Luong global attention (general score, input "
                                    "feeding)"), "reverse", "lstm+luong", {}, {**REVERSE, "lr": 1e-2}),
    "reverse-lstm": Preset(N_("Reverse letters with a plain LSTM (no attention): watch it struggle"),
                           "reverse", "lstm", {}, {**REVERSE, "lr": 1e-2}),
    "reverse-long-transformer": Preset(N_("Reverse 4 to 24 letters with a Transformer"), "reverse", "transformer",
                                       {}, {**FAST, "lr": 7e-3, "steps": 1500}, LONG),
    "reverse-long-lstm+bahdanau": Preset(N_("Reverse 4 to 24 letters with an LSTM and Bahdanau attention"), "reverse",
                                         "lstm+bahdanau", {}, {**FAST, "lr": 1e-2, "steps": 1500}, LONG),
    "reverse-long-lstm": Preset(N_("Reverse 4 to 24 letters with a plain LSTM: accuracy falls with length"),
                                "reverse", "lstm", {}, {**FAST, "lr": 1e-2, "steps": 1500}, LONG),
    "reverse-long-rnn": Preset(N_("Reverse 4 to 24 letters with a plain tanh RNN (no attention): the gradient fades "
                                  "with the distance"), "reverse", "rnn", {}, {**FAST, "lr": 3e-3, "steps": 1500},
                               LONG),
    "copy-transformer": Preset(N_("Copy letters: the diagonal forms in cross-attention"),
                               "copy", "transformer", {}, {**FAST, "steps": 400}),
    "sort-transformer": Preset(N_("Sort letters with a Transformer"), "sort", "transformer",
                               {"n_encoder_layers": 2}, {**FAST, "lr": 5e-3, "steps": 1500}),
    "addition-transformer": Preset(N_("Add numbers like 123+45"), "addition", "transformer",
                                   {"n_encoder_layers": 2, "n_decoder_layers": 2}, {**FAST, "lr": 5e-3, "steps": 3000}),
    "dates-transformer": Preset(N_("Normalise dates to ISO format: the cross-attention alignments are the lesson"),
                                "dates", "transformer", {}, {**FAST, "steps": 1500}),
    "zh-numbers-transformer": Preset(N_("Read Chinese number words (三百零五 -> 305): cross-attention finds each "
                                        "digit's word, and 零 stands for a run of zeros"), "zh-numbers", "transformer",
                                     {"n_encoder_layers": 2}, {**FAST, "steps": 3000}),
    "dates-lstm+bahdanau": Preset(N_("Normalise dates with an LSTM and Bahdanau attention"),
                                  "dates", "lstm+bahdanau", {}, {**FAST, "steps": 1500}),
    "dates-lstm": Preset(N_("Normalise dates with a plain LSTM (no attention)"), "dates", "lstm", {},
                         {**FAST, "steps": 1500}),
    "pydoc-lm": Preset(N_("A small language model over Python's documentation"), "pydoc", "lm",
                       {"d_model": 128, "n_decoder_layers": 2, "d_ff": 256, "max_len": 64},
                       {**FAST, "batch_size": 32, "steps": 1500, "eval_every": 100}),
    "induction-lm": Preset(N_("Induction heads: a two-layer attention-only Transformer on random strings said twice"),
                           "induction", "lm", {"d_model": 64, "n_heads": 4, "n_decoder_layers": 2, "d_ff": 0,
                                               "positional": "learned", "max_len": 64},
                           {**FAST, "lr": 3e-3, "steps": 1500, "eval_every": 100}),
    "prose-lm": Preset(N_("A language model over the English that ships with Python (docs and docstrings)"), "prose",
                       "lm", PROSE_SIZES, {**LM_TRAIN, "steps": 4000}),
    "code-lm": Preset(N_("A language model over the standard library's Python source"), "code", "lm",
                      PROSE_SIZES, {**LM_TRAIN, "steps": 4000}),
}


def build(task, architecture, sizes=None, train=None):
    """(model, train config) for a task; checks that architecture and task fit and the size is allowed.

    The weights are drawn from a generator seeded with the train config's seed, never from the global RNG."""
    if kind_of(architecture) != task.kind:
        misfit = (_("the {architecture} architecture does not fit the {task} task (a language model): choose lm")
                  if task.kind == "lm" else _("the {architecture} architecture does not fit the {task} task "
                                              "(sequence-to-sequence): choose transformer or an RNN"))
        raise ValueError(misfit.format(architecture=architecture, task=task.name))
    config = model_config(architecture, task.tokenizer, **(sizes or {}))
    check_size(config)
    train_config = TrainConfig(**(train or {}))
    return build_model(config, torch.Generator().manual_seed(train_config.seed)), train_config


def build_preset(name, seed=0):
    """(task, model, train config) of a named preset, all seeded."""
    if name not in PRESETS:
        raise ValueError(_("unknown preset {name}: choose one of {presets}").format(name=repr(name),
                                                                                     presets=", ".join(PRESETS)))
    preset = PRESETS[name]
    task = make_task(preset.task, seed=seed, **preset.task_params)
    model, config = build(task, preset.architecture, preset.sizes, {**preset.train, "seed": seed})
    return task, model, config
