"""What crosses the boundary between the server and a run's worker: the job as plain data (specs, dicts and
safetensors bytes), the weights as safetensors bytes, and deltas of a run's record (numbers and numpy arrays).

Shared by the executors (attnviz.training.executor) and the worker process (attnviz.training.worker).
"""
import threading
from dataclasses import asdict, dataclass, field

from safetensors.torch import load, save

from attnviz.models.architectures import CONFIG_FAMILIES, build_model, family_of
from attnviz.training.loop import TrainResult


@dataclass(frozen=True)
class Job:
    """Everything a worker needs to train, as plain data (a user task's text is inline in its spec)."""
    task: dict  # task.spec()
    tokenizer: dict  # tokenizer.spec()
    tokenizer_files: dict  # {file name: bytes}
    family: str  # a key of CONFIG_FAMILIES
    model_config: dict
    weights: bytes  # the initial weights (safetensors): the server seeds and builds, the worker trains
    train: dict  # asdict(TrainConfig)
    name: str = ""  # the run's name and who trained it as others see it (never the owner's token), for a registry
    owner: str = ""  # that several servers share
    live: tuple = field(default=None, compare=False, repr=False)  # (model, task) for an executor in this process

    @classmethod
    def of(cls, model, task, config, name="", owner=""):
        return cls(task.spec(), task.tokenizer.spec(), task.tokenizer.files(), family_of(model.config),
                   asdict(model.config), weights_bytes(model), asdict(config), name, owner, (model, task))


def weights_bytes(model):
    """The model's state as safetensors bytes (tied tensors copied apart, which safetensors requires)."""
    return save({name: t.detach().to("cpu", copy=True).contiguous() for name, t in model.state_dict().items()})


def load_weights(model, data):
    model.load_state_dict(load(data), strict=True)
    return model


def rebuild_model(job):
    return load_weights(build_model(CONFIG_FAMILIES[job.family](**job.model_config)), job.weights)


class Mirror:
    """The server's copy of a job's TrainResult, grown by deltas (`apply`) and read under its lock."""

    def __init__(self, status="running"):
        self.lock = threading.Lock()
        self.result = TrainResult(status=status)
        self.node = ""  # where the job trains when that is not this machine: a cluster node's address

    def apply(self, delta):
        with self.lock:
            apply_delta(self.result, delta)


def delta_since(result, sent):
    """What changed in `result` since the counts in `sent` (updated): scalars, new history, evals and snapshots."""
    history = {k: v[sent["history"]:] for k, v in result.history.items()}
    evals = {k: v[sent["evals"]:] for k, v in result.evals.items()}
    snapshots = result.snapshots[sent["snapshots"]:]
    sent.update(history=len(result.history["step"]), evals=len(result.evals["step"]), snapshots=len(result.snapshots))
    return {"status": result.status, "error": result.error, "step": result.step, "elapsed": result.elapsed,
            "metrics": dict(result.metrics), "reached_target_at": result.reached_target_at,
            "history": history, "evals": evals, "snapshots": snapshots}


def apply_delta(result, delta):
    for key in ("status", "error", "step", "elapsed", "metrics", "reached_target_at"):
        setattr(result, key, delta[key])
    for record, new in ((result.history, delta["history"]), (result.evals, delta["evals"])):
        for key, values in new.items():
            record.setdefault(key, []).extend(values)
    result.snapshots.extend(delta["snapshots"])
