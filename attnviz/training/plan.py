"""A training run checked before it starts, and started under a name nobody else holds.

    plan = plan_run(task, "transformer", sizes, {"steps": 600}, name="rev-1")   # ValueError says what is wrong
    run = start(plan, owner="9f86d081")                                          # a TrainingRun in REGISTRY
"""
from dataclasses import asdict, dataclass

from attnviz.i18n import _
from attnviz.models.architectures import architectures_for, check_size, kind_of, model_config
from attnviz.training import checkpoint_folder
from attnviz.training.checkpoint_names import validate_name
from attnviz.training.config import TrainConfig
from attnviz.training.owners import anonymous_label
from attnviz.training.presets import build
from attnviz.training.runs import REGISTRY, TrainingRun


@dataclass(frozen=True)
class Plan:
    """A run that can start: every setting checked, the size counted."""
    task: object
    architecture: str
    sizes: dict
    train: TrainConfig
    name: str
    trained_by: str  # the name the student typed, shown to others ("" for an anonymous label)
    preset: str
    n_parameters: int


def name_taken(name, registry=REGISTRY):
    """A saved model (yours or shipped) has this name, or a run still going here does."""
    if any((folder / name).exists() for folder in (checkpoint_folder.USER_DIR, checkpoint_folder.SHIPPED_DIR)):
        return True
    with registry.condition:
        return any(run.name == name and not run.done for run in registry.runs)


def check_name(name, registry=REGISTRY):
    validate_name(name)
    if name_taken(name, registry):
        raise ValueError(_("a model or run named {name} exists already: choose another name").format(name=repr(name)))
    return name


def free_name(base, registry=REGISTRY, avoid=()):
    """`base` (made a valid name), or base-2, base-3, ... whichever is free (and not in `avoid`)."""
    base = "".join(c if c.isalnum() or c in "._-" else "-" for c in base).strip(".-") or "run"
    return next(n for n in [base] + [f"{base}-{i}" for i in range(2, 10_000)]
                if n not in avoid and not name_taken(n, registry))


def plan_run(task, architecture, sizes, train, name, trained_by="", preset="", registry=REGISTRY):
    """Check everything before a run starts; a ValueError names what to change."""
    if kind_of(architecture) != task.kind:
        raise ValueError(_("the {architecture} architecture does not fit the {task} task: choose one of "
                           "{choices}").format(architecture=architecture, task=task.name,
                                               choices=", ".join(architectures_for(task.kind))))
    longest = max(task.max_src_len, task.max_tgt_len)
    sizes = {**sizes, "max_len": max(128, longest + 8)}  # positions for the longest example, and room to decode
    n_parameters = check_size(model_config(architecture, task.tokenizer, **sizes))
    config = TrainConfig(**train)
    return Plan(task, architecture, sizes, config, check_name(name, registry), trained_by.strip()[:40], preset,
                n_parameters)


def start(plan, owner, registry=REGISTRY, rename_from=None):
    """Build the model (from its own seeded generator) and start its run for `owner` (a browser's token: the run
    and its model are theirs); it saves itself under its name when it ends.

    The run claims its name (attnviz.training.checkpoint_names.claim_name): if another writer, in this process or
    another, took `plan.name` a moment ago, that is a ValueError, unless `rename_from` gives a base for a free name
    instead (for a name the page suggested, not one the user typed)."""
    model, config = build(plan.task, plan.architecture, plan.sizes, asdict(plan.train))
    meta = {"preset": plan.preset or None, "arch": plan.architecture}
    trained_by = plan.trained_by or anonymous_label(owner)
    name, tried = plan.name, set()
    with registry.condition:  # no other tab of this server picks a free name between our check and our claim
        while True:
            try:
                return TrainingRun(model, plan.task, config, name=check_name(name, registry), owner=owner,
                                   trained_by=trained_by, save=True, registry=registry, extra_meta=meta).start()
            except ValueError:
                if not rename_from or len(tried) >= 100:
                    raise
                tried.add(name)
                name = free_name(rename_from, registry, avoid=tried)
