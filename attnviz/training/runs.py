"""Training runs for the app: a run object trained by an executor, and the process-wide registry that queues them.

    run = TrainingRun(model, task, config, name="rev-1"); run.start()  # trains in a worker process
    run.snapshot()                                                     # a consistent copy for the page

The run's thread in this process only waits: for a slot, then on the executor's handle (by default a worker
process of the local pool, or a Ray actor with $ATTNVIZ_RAY_ADDRESS set: attnviz.training.executor.default_executor),
and at the end loads the trained weights into `model`.

All runs of the process share one `REGISTRY`, which lets at most `max_concurrent` of them train at
once and serves the rest in order (a class of thirty on one laptop).

What a run says about itself (a divergence, a lost worker) is made where no session's language is set (its own
thread, a worker process), so it is an attnviz.i18n.Message: English in `run.result.error`, and in the language of
the page that asks in `run.snapshot().error`.
"""
import copy
import platform
import threading
import time
from dataclasses import asdict, dataclass

from attnviz.i18n import N_, Message, _, translate
from attnviz.training.checkpoint import save_checkpoint
from attnviz.training.checkpoint_names import claim_name
from attnviz.training.device import pick_device
from attnviz.training.evaluation import baseline_bits_per_char, evaluate_split
from attnviz.training.executor import default_executor, default_slots
from attnviz.training.job import Job, Mirror, load_weights
from attnviz.training.owners import anonymous_label


class RunRegistry:
    """Admits at most `max_concurrent` runs at once, first come first served, and remembers all runs."""

    def __init__(self, max_concurrent=None, keep_finished=30):
        self.max_concurrent = max_concurrent or default_slots()
        self.keep_finished = keep_finished  # finished runs hold their model in memory: keep only the newest
        self.runs = []  # every run of this process, newest last
        self.waiting = []  # queued runs, in order
        self.active = 0
        self.condition = threading.Condition()

    def add(self, run):
        """Queue a run; finished runs beyond the newest `keep_finished` are forgotten (they are saved)."""
        with self.condition:
            finished = [r for r in self.runs if r.done]
            forget = set(finished[:-self.keep_finished]) if len(finished) > self.keep_finished else set()
            self.runs = [r for r in self.runs if r not in forget] + [run]
            self.waiting.append(run)

    def acquire(self, run):
        """Block until `run` is first in line and a slot is free; False if it was stopped meanwhile."""
        with self.condition:
            while not run.stop_requested.is_set() and (self.waiting[0] is not run or self.active >= self.max_concurrent):
                self.condition.wait(timeout=0.2)
            self.waiting.remove(run)
            self.condition.notify_all()
            if run.stop_requested.is_set():
                return False
            self.active += 1
            return True

    def release(self):
        with self.condition:
            self.active -= 1
            self.condition.notify_all()

    def position(self, run):
        """1-based place in the queue, or 0 when not waiting."""
        with self.condition:
            return self.waiting.index(run) + 1 if run in self.waiting else 0

    def find(self, name):
        with self.condition:
            return next((r for r in reversed(self.runs) if r.name == name), None)

    def stop_all(self, timeout=10.0):
        """Stop every run (the server shutting down, a test ending), whoever started it."""
        with self.condition:
            runs = list(self.runs)
        for run in runs:
            run.stop(run.owner)
        for run in runs:
            run.join(timeout)


REGISTRY = RunRegistry()


@dataclass
class RunSnapshot:
    """A consistent copy of a run's state, safe to read while the run goes on."""
    name: str
    trained_by: str
    status: str
    queue_position: int
    step: int
    steps: int
    elapsed: float
    history: dict
    evals: dict
    metrics: dict
    snapshots: list
    error: str
    saved_path: str
    device: str
    started_at: float
    node: str = ""  # the cluster node it trains on (empty here)


class TrainingRun:
    """One training run, waited for by its own daemon thread here; saved under `name` when it ends (if `save`).

    `executor` trains it (default: the local pool of worker processes); `model` holds the trained weights after.
    The run and its checkpoint belong to `owner` (a browser's token, never shown; "" for this process's own
    runs, such as the command line's): only the owner stops it. `trained_by` is the name shown to others. A run that
    saves holds its name from `start` until it is saved (`claim`, or claimed by `start`): no other writer, here or
    in another process, can take the name meanwhile."""

    def __init__(self, model, task, config, name="run", owner="", save=False, registry=None, extra_meta=None,
                 executor=None, trained_by="", claim=None):
        self.model, self.task, self.config = model, task, config
        self.name, self.owner, self.save, self.extra_meta = name, owner, save, extra_meta or {}
        self.trained_by, self.claim = trained_by, claim
        self.registry = registry or REGISTRY
        self.executor = executor or default_executor()
        self.stop_requested = threading.Event()
        self.mirror, self.handle, self.test_metrics = Mirror(), None, None
        self.mirror.result.status = "queued"
        self.saved_path, self.started_at = "", 0.0
        self.thread = threading.Thread(target=self._work, name=f"attnviz-train-{name}", daemon=True)

    @property
    def lock(self):
        return self.mirror.lock

    @property
    def result(self):
        return self.mirror.result

    def start(self):
        """Queue the run (claiming its name first if it saves and holds no claim: a CheckpointError if taken)."""
        if self.save and self.claim is None:
            self.claim = claim_name(self.name, self.owner)
        self.started_at = time.time()
        self.registry.add(self)
        self.thread.start()
        return self

    def _work(self):
        if not self.registry.acquire(self):
            with self.lock:
                self.result.status = "stopped"
            self._release_name()
            return
        try:
            handle = self.executor.submit(Job.of(self.model, self.task, self.config, self.name,
                                                 self.trained_by or anonymous_label(self.owner)))
            with self.lock:
                self.handle = handle
                self.mirror = handle.mirror
            if self.stop_requested.is_set():
                handle.stop()
            result, weights, self.test_metrics = handle.result()
            if weights is not None:  # from a worker; an executor of this process trained self.model in place
                load_weights(self.model, weights)
            with self.lock:
                check_divergence(result, self.config, self.extra_meta.get("preset"), self.task.name)
            if self.save and result.status not in ("failed", "diverged"):  # a diverged run: only if the user asks
                self._save()
        except Exception as error:  # shown to the user in the page; the server goes on
            with self.lock:
                self.result.status, self.result.error = "failed", f"{type(error).__name__}: {error}"
        finally:
            self.registry.release()
            self._release_name()

    def _release_name(self):
        if self.claim is not None:
            self.claim.release()

    def save_anyway(self, owner=""):
        """Save a run that ended diverged (its owner asked to keep it); its path. The name is claimed again: it was
        free while the run stood unsaved."""
        self._check_owner(owner, N_("only the one who started the run {name} can save it; you can watch it"))
        if not self.done or self.result.status != "diverged" or self.saved_path:
            raise ValueError(_("the run {name} is not a finished, diverged, unsaved run").format(name=repr(self.name)))
        with claim_name(self.name, self.owner) as self.claim:
            self._save()
        return self.saved_path

    def _save(self):
        meta = run_meta(self.model, self.task, self.config, self.result,
                        {**self.extra_meta, "owner": self.owner, "trained_by": self.trained_by}, self.test_metrics)
        path = save_checkpoint(self.claim.path, self.model, self.task.tokenizer, meta, claim=self.claim)
        with self.lock:
            self.saved_path = str(path)

    def _check_owner(self, owner, refusal):
        """A ValueError with `refusal` (a msgid naming the run) unless `owner` started the run."""
        if owner != self.owner:
            raise ValueError(_(refusal).format(name=repr(self.name)))

    def stop(self, owner="", timeout=1.0):
        """Ask the run to stop, if `owner` started it (a ValueError if not), and wait up to `timeout` seconds for
        it to end."""
        self._check_owner(owner, N_("only the one who started the run {name} can stop it; you can watch it"))
        self.stop_requested.set()
        with self.lock:
            handle = self.handle
        if handle is not None:
            handle.stop()
        self.join(timeout)

    def join(self, timeout=None):
        if self.thread.is_alive():
            self.thread.join(timeout)

    @property
    def done(self):
        return self.thread.ident is not None and not self.thread.is_alive()

    def snapshot(self):
        """A copy of the run's state for the page that asks, its error in that page's language."""
        with self.lock:
            r = self.result
            return RunSnapshot(
                name=self.name, trained_by=self.trained_by, status=r.status,
                queue_position=self.registry.position(self),
                step=r.step, steps=self.config.steps, elapsed=r.elapsed, history=copy.deepcopy(r.history),
                evals=copy.deepcopy(r.evals), metrics=dict(r.metrics), snapshots=list(r.snapshots),
                error=translate(r.error), saved_path=self.saved_path, device=str(pick_device(self.config.device)),
                started_at=self.started_at, node=self.mirror.node)


def check_divergence(result, config, preset=None, task_name=""):
    """Mark a run that ended "done" or "stopped" as "diverged" (with the hint) if its training went wrong: the loss
    at the end above its first loss, or exact match 0 at the end of a preset that solves its task. (A NaN is caught
    by the loop as it happens.)"""
    from attnviz.training.presets import PRESETS

    if result.status not in ("done", "stopped") or not result.history["loss"]:
        return result
    losses = result.history["loss"]
    end = sum(losses[-10:]) / len(losses[-10:])
    solves = preset in PRESETS and PRESETS[preset].task == task_name and result.status == "done" \
        and result.step >= PRESETS[preset].train.get("steps", config.steps)
    if len(losses) > 1 and end > losses[0]:
        why = Message(N_("the loss at the end ({end}) is above its first loss ({first})"), end=f"{end:.3g}",
                      first=f"{losses[0]:.3g}")
    elif solves and result.metrics.get("exact_match", 1) == 0:
        why = Message(N_("exact match is 0 after {steps} steps of a preset that solves this task"), steps=result.step)
    else:
        return result
    result.status = "diverged"
    result.error = Message(N_("The run diverged: {why}. It was not saved; lower the learning rate (it was {lr}) and "
                              "start again, or save it anyway."), why=why, lr=f"{config.lr:g}")
    return result


def run_meta(model, task, config, result, extra=None, test_metrics=None):
    """The meta.json content that describes a trained model (see attnviz.training.checkpoint); the test metrics
    are computed here unless given (a worker computes them beside the training)."""
    test_metrics = test_metrics if test_metrics is not None else evaluate_split(model, task, "test")
    if task.kind == "lm" and "baseline_bits_per_char" not in test_metrics:
        test_metrics = {**test_metrics, "baseline_bits_per_char": baseline_bits_per_char(task)}
    snapshots = [{"step": s["step"], "patterns": {n: p[:1].round(3).tolist() for n, p in s["patterns"].items()}}
                 for s in thin(result.snapshots, 24)]
    return {"task": task.spec(),
            "train": asdict(config), "history": result.history, "evals": result.evals, "status": result.status,
            "metrics": test_metrics, "train_seconds": result.elapsed, "snapshots": snapshots,
            "python": platform.python_version(), **(extra or {})}


def thin(items, n):
    """At most n items, evenly spaced, always keeping the last."""
    if len(items) <= n:
        return list(items)
    return [items[round(i * (len(items) - 1) / (n - 1))] for i in range(n)]
