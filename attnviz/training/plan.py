"""A training run checked before it starts, and started under a name nobody else holds.

    plan = plan_run(task, "transformer", sizes, {"steps": 600}, name="rev-1")   # ValueError says what is wrong
    run = start(plan)                                                            # a TrainingRun in REGISTRY
"""
from dataclasses import asdict, dataclass

from attnviz.models.architectures import architectures_for, check_size, kind_of, model_config
from attnviz.training import checkpoint
from attnviz.training.config import TrainConfig
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
    owner: str
    preset: str
    n_parameters: int


def name_taken(name, registry=REGISTRY):
    """A saved model (yours or shipped) has this name, or a run still going here does."""
    if any((folder / name).exists() for folder in (checkpoint.USER_DIR, checkpoint.SHIPPED_DIR)):
        return True
    with registry.condition:
        return any(run.name == name and not run.done for run in registry.runs)


def check_name(name, registry=REGISTRY):
    checkpoint.validate_name(name)
    if name_taken(name, registry):
        raise ValueError(f"a model or run named {name!r} exists already: choose another name")
    return name


def free_name(base, registry=REGISTRY):
    """`base` (made a valid name), or base-2, base-3, ... whichever is free."""
    base = "".join(c if c.isalnum() or c in "._-" else "-" for c in base).strip(".-") or "run"
    return next(n for n in [base] + [f"{base}-{i}" for i in range(2, 10_000)] if not name_taken(n, registry))


def plan_run(task, architecture, sizes, train, name, owner="", preset="", registry=REGISTRY):
    """Check everything before a run starts; a ValueError names what to change."""
    if kind_of(architecture) != task.kind:
        raise ValueError(f"the {architecture} architecture does not fit the {task.name} task: choose one of "
                         f"{', '.join(architectures_for(task.kind))}")
    longest = max(task.max_src_len, task.max_tgt_len)
    sizes = {**sizes, "max_len": max(128, longest + 8)}  # positions for the longest example, and room to decode
    n_parameters = check_size(model_config(architecture, task.tokenizer, **sizes))
    config = TrainConfig(**train)
    return Plan(task, architecture, sizes, config, check_name(name, registry), owner.strip()[:40], preset, n_parameters)


def start(plan, registry=REGISTRY, rename_from=None):
    """Build the model (from its own seeded generator) and start its run; it saves itself under its name when it ends.

    If another tab took `plan.name` a moment ago, that is an error, unless `rename_from` gives a base for a
    free name instead (for a name the page suggested, not one the user typed)."""
    model, config = build(plan.task, plan.architecture, plan.sizes, asdict(plan.train))
    meta = {"preset": plan.preset or None, "arch": plan.architecture, "owner": plan.owner}
    with registry.condition:  # claim the name and register the run in one step
        name = free_name(rename_from, registry) if rename_from and name_taken(plan.name, registry) else plan.name
        return TrainingRun(model, plan.task, config, name=check_name(name, registry), owner=plan.owner, save=True,
                           registry=registry, extra_meta=meta).start()
