"""Training: the loop, its metrics, and a background-thread run object for the app.

    result = train(model, task, TrainConfig(steps=600))               # blocking, from the CLI
    run = TrainingRun(model, task, config, name="rev-1"); run.start()  # in its own thread, from the app
    run.snapshot()                                                     # a consistent copy for the page

All runs of the process share one `REGISTRY`, which lets at most `max_concurrent` of them train at
once and serves the rest in order (a class of thirty on one laptop).
"""
import copy
import math
import os
import threading
import time
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from attnviz import checkpoint, parameter_count
from attnviz.config import ConfigBase, _check_choice, _check_whole, _reject
from attnviz.decoding import greedy
from attnviz.device import autocast, pick_device
from attnviz.hooks import capture

MAX_PARAMETERS = 5_000_000  # a bound per run, so one user cannot take a shared machine's memory


@dataclass(frozen=True)
class TrainConfig(ConfigBase):
    steps: int = 1000
    batch_size: int = 64
    lr: float = 3e-3
    warmup: int = 50  # steps of linear warm-up, then cosine decay to 10% of lr at `steps`
    weight_decay: float = 0.01
    label_smoothing: float = 0.0
    clip: float = 1.0  # gradient-norm clipping (0 = off)
    seed: int = 0
    time_budget: float = 0.0  # seconds of training (0 = no limit): stops early, keeping the schedule
    target_exact_match: float = 0.0  # stop once validation exact match reaches this (0 = never)
    eval_every: int = 100
    eval_examples: int = 500  # validation examples per evaluation
    snapshot_every: int = 50  # attention snapshots of the probe inputs (0 = none)
    device: str = "auto"

    def __post_init__(self):
        _check_whole(self, ["steps", "batch_size", "eval_every", "eval_examples"])
        _check_whole(self, ["warmup", "snapshot_every"], minimum=0)
        if self.batch_size > 4096:
            _reject("batch_size", self.batch_size, "use 4096 or less")
        if not (isinstance(self.lr, (int, float)) and 0 < self.lr <= 1):
            _reject("lr", self.lr, "use a learning rate in (0, 1], e.g. 3e-3")
        for name in ("weight_decay", "clip", "time_budget"):
            if not getattr(self, name) >= 0:
                _reject(name, getattr(self, name), "use 0 or more")
        if not 0 <= self.label_smoothing < 1:
            _reject("label_smoothing", self.label_smoothing, "use a value in [0, 1)")
        if not 0 <= self.target_exact_match <= 1:
            _reject("target_exact_match", self.target_exact_match, "use a fraction in [0, 1]")
        _check_choice(self, "device", ("auto", "cpu", "cuda", "mps"))


def check_size(model_config, limit=MAX_PARAMETERS):
    n = parameter_count(model_config)
    if n > limit:
        raise ValueError(f"this model would have {n:,} parameters; the limit here is {limit:,}: "
                         f"make d_model, d_ff or the number of layers smaller")
    return n


def learning_rate(step, config):
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    progress = min(1.0, (step - config.warmup) / max(1, config.steps - config.warmup))
    return config.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def logits_of(model, batch):
    return model(batch.src, batch.tgt_in) if model.has_encoder else model(batch.tgt_in)  # (B, T, V)


def batch_metrics(logits, batch, pad_id):
    """Summed loss, correct tokens, real tokens, exact sequences, sequences.

    Exact match counts sequences whose teacher-forced argmax is right at every position (EOS
    included): that is exactly when greedy decoding reproduces the target, since each greedy step
    then sees the same prefix as teacher forcing.
    """
    real = batch.tgt_out != pad_id  # (B, T)
    loss = F.cross_entropy(logits.float().flatten(0, 1), batch.tgt_out.flatten(), ignore_index=pad_id, reduction="sum")
    right = (logits.argmax(-1) == batch.tgt_out) | ~real  # (B, T)
    return loss.item(), (right & real).sum().item(), real.sum().item(), right.all(1).sum().item(), len(right)


@torch.no_grad()
def evaluate(model, task, split="test", max_examples=None, batch_size=256):
    """Loss, token accuracy, exact match (seq2seq) or perplexity (LM) on a split."""
    was_training, device = model.training, next(model.parameters()).device
    model.eval()
    totals = [0.0] * 5
    seen = 0
    for batch in task.batches(split, batch_size, seed=0):
        batch = batch.to(device)
        with autocast(device):
            logits = logits_of(model, batch)
        totals = [t + x for t, x in zip(totals, batch_metrics(logits, batch, model.config.pad_id))]
        seen += len(batch.tgt_out)
        if max_examples and seen >= max_examples:
            break
    model.train(was_training)
    loss_sum, right, tokens, exact, sequences = totals
    loss = loss_sum / max(1, tokens)
    metrics = {"loss": loss, "token_accuracy": right / max(1, tokens)}
    if task.kind == "lm":
        metrics["perplexity"] = math.exp(min(loss, 50.0))
    else:
        metrics["exact_match"] = exact / max(1, sequences)
    return metrics


@torch.no_grad()
def attention_snapshot(model, probe_batch):
    """Every attention pattern of the probe inputs, as float16 arrays {name: (P, H, Tq, Tk)}."""
    was_training = model.training
    model.eval()
    with capture(model) as cache:
        logits_of(model, probe_batch)
    model.train(was_training)
    return {name: pattern.float().cpu().half().numpy() for name, pattern in cache.items()}


LM_PROMPT_TOKENS, LM_CONTINUATION_TOKENS = 8, 16


@torch.no_grad()
def probe_outputs(model, task, probe_batch):
    """The greedy outputs of the probe inputs as text: seq2seq from the source, an LM continuing the
    first LM_PROMPT_TOKENS tokens of each probe."""
    was_training = model.training
    model.eval()
    if model.has_encoder:
        decoded = greedy(model, task.tokenizer, probe_batch.src, probe_batch.tgt_out.shape[1] + 4, trace=False)
    else:
        prompt = probe_batch.tgt_in[:, :1 + min(LM_PROMPT_TOKENS, min(map(len, task.probes)) - 1)]  # BOS + tokens
        decoded = greedy(model, task.tokenizer, prompt, LM_CONTINUATION_TOKENS, trace=False)
    model.train(was_training)
    return [task.tokenizer.decode(decoded.ids(row)) for row in range(len(decoded.tokens))]


@dataclass
class TrainResult:
    status: str = "running"  # queued | running | done | stopped | diverged | failed
    error: str = ""
    step: int = 0
    elapsed: float = 0.0  # seconds spent training (evaluation excluded)
    history: dict = field(default_factory=lambda: {"step": [], "loss": [], "lr": [], "tokens_per_s": [], "time": []})
    evals: dict = field(default_factory=lambda: {"step": [], "time": []})  # plus one list per metric
    snapshots: list = field(default_factory=list)  # [{"step": s, "patterns": {...}, "outputs": [probe text]}]
    metrics: dict = field(default_factory=dict)  # latest validation metrics
    reached_target_at: float | None = None  # training seconds when target_exact_match was first reached


def train(model, task, config, result=None, should_stop=lambda: False, lock=None, clock=time.perf_counter):
    """Train in place and fill `result` (a TrainResult) as it goes; returns it.

    `lock` guards every write to `result` so another thread can copy it consistently. `clock` measures
    training time (benchmarks pass `time.process_time`, which other work on the machine hardly inflates).
    A NaN/inf loss or gradient stops the run with the last good weights restored.
    """
    result = result or TrainResult()
    lock = lock or threading.Lock()
    torch.manual_seed(config.seed)
    device = pick_device(config.device)
    model.to(device).train()
    pad_id = model.config.pad_id
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=(0.9, 0.98), weight_decay=config.weight_decay)
    params = list(model.parameters())
    last_good = [p.detach().clone() for p in params]
    batches = task.batches("train", config.batch_size, seed=config.seed)
    probes = task.collate(task.probes).to(device) if config.snapshot_every else None
    tokens_seen, started = 0, clock()
    eval_time = 0.0
    with lock:
        result.status = "running"
    for step in range(1, config.steps + 1):
        elapsed, stop_asked = clock() - started - eval_time, should_stop()
        if stop_asked or (config.time_budget and elapsed >= config.time_budget):
            with lock:
                result.status = "stopped" if stop_asked else "done"
            break
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step - 1, config)
        batch = next(batches).to(device)
        with autocast(device):
            logits = logits_of(model, batch)  # (B, T, V)
        loss = F.cross_entropy(logits.float().flatten(0, 1), batch.tgt_out.flatten(), ignore_index=pad_id,
                               label_smoothing=config.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, config.clip or float("inf"))
        if not (torch.isfinite(loss) and torch.isfinite(grad_norm)):
            restore(params, last_good)
            with lock:
                result.status, result.step = "diverged", step
                result.error = (f"the loss became {loss.item()} at step {step}: training stopped and the weights of "
                                f"step {step - 1} were kept. Lower the learning rate (it was {config.lr:g}).")
            return result
        restore(last_good, params)  # these weights gave a finite loss and gradient
        optimizer.step()
        tokens_seen += batch.n_tokens
        elapsed = clock() - started - eval_time
        with lock:
            for key, value in (("step", step), ("loss", loss.item()), ("lr", optimizer.param_groups[0]["lr"]),
                               ("tokens_per_s", tokens_seen / max(elapsed, 1e-9)), ("time", elapsed)):
                result.history[key].append(value)
            result.step, result.elapsed = step, elapsed
        eval_started = clock()
        if config.snapshot_every and (step % config.snapshot_every == 0 or step == 1):
            patterns, outputs = attention_snapshot(model, probes), probe_outputs(model, task, probes)
            with lock:
                result.snapshots.append({"step": step, "patterns": patterns, "outputs": outputs})
        if step % config.eval_every == 0 or step == config.steps:
            record_eval(model, task, config, result, lock, step, elapsed)
            if config.target_exact_match and result.metrics.get("exact_match", 0) >= config.target_exact_match:
                with lock:
                    result.status = "done"
                break
        eval_time += clock() - eval_started
    else:
        with lock:
            result.status = "done"
    if not result.evals["step"] or result.evals["step"][-1] != result.step:
        record_eval(model, task, config, result, lock, result.step, result.elapsed)
    return result


@torch.no_grad()
def restore(targets, sources):
    for target, source in zip(targets, sources):
        target.copy_(source)


def record_eval(model, task, config, result, lock, step, elapsed):
    metrics = evaluate(model, task, "val", max_examples=config.eval_examples)
    with lock:
        result.metrics = metrics
        for name, value in {"step": step, "time": elapsed, **metrics}.items():
            result.evals.setdefault(name, []).append(value)
        target = config.target_exact_match
        if target and result.reached_target_at is None and metrics.get("exact_match", 0) >= target:
            result.reached_target_at = elapsed


# ---------------------------------------------------------------------------------------------
# Runs in background threads, and the process-wide registry that queues them.


class RunRegistry:
    """Admits at most `max_concurrent` runs at once, first come first served, and remembers all runs."""

    def __init__(self, max_concurrent=None, keep_finished=30):
        self.max_concurrent = max_concurrent or max(1, (os.cpu_count() or 2) - 1)
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

    def stop_all(self, timeout=5.0):
        with self.condition:
            runs = list(self.runs)
        for run in runs:
            run.stop()
        for run in runs:
            run.join(timeout)


REGISTRY = RunRegistry()


@dataclass
class RunSnapshot:
    """A consistent copy of a run's state, safe to read while the run goes on."""
    name: str
    owner: str
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


class TrainingRun:
    """One training run in its own daemon thread; saved under `name` when it ends (if `save=True`)."""

    def __init__(self, model, task, config, name="run", owner="", save=False, registry=None, extra_meta=None):
        self.model, self.task, self.config = model, task, config
        self.name, self.owner, self.save, self.extra_meta = name, owner, save, extra_meta or {}
        self.registry = registry or REGISTRY
        self.stop_requested = threading.Event()
        self.lock = threading.Lock()
        self._result = TrainResult(status="queued")
        self.saved_path, self.started_at = "", 0.0
        self.thread = threading.Thread(target=self._work, name=f"attnviz-train-{name}", daemon=True)

    def start(self):
        self.started_at = time.time()
        self.registry.add(self)
        self.thread.start()
        return self

    def _work(self):
        if not self.registry.acquire(self):
            with self.lock:
                self._result.status = "stopped"
            return
        try:
            train(self.model, self.task, self.config, self._result, self.stop_requested.is_set, self.lock)
            if self.save:
                self._save()
        except Exception as error:  # shown to the user in the page; the server goes on
            with self.lock:
                self._result.status, self._result.error = "failed", f"{type(error).__name__}: {error}"
        finally:
            self.registry.release()

    def _save(self):
        path = checkpoint.USER_DIR / self.name
        meta = run_meta(self.model, self.task, self.config, self.result, self.extra_meta)
        checkpoint.save_checkpoint(path, self.model, self.task.tokenizer, meta)
        with self.lock:
            self.saved_path = str(path)

    def stop(self, timeout=1.0):
        """Ask the run to stop and wait up to `timeout` seconds for its thread."""
        self.stop_requested.set()
        self.join(timeout)

    def join(self, timeout=None):
        if self.thread.is_alive():
            self.thread.join(timeout)

    @property
    def result(self):
        return self._result

    @property
    def done(self):
        return self.thread.ident is not None and not self.thread.is_alive()

    def snapshot(self):
        with self.lock:
            r = self._result
            return RunSnapshot(
                name=self.name, owner=self.owner, status=r.status, queue_position=self.registry.position(self),
                step=r.step, steps=self.config.steps, elapsed=r.elapsed, history=copy.deepcopy(r.history),
                evals=copy.deepcopy(r.evals), metrics=dict(r.metrics), snapshots=list(r.snapshots), error=r.error,
                saved_path=self.saved_path, device=str(pick_device(self.config.device)), started_at=self.started_at)


def run_meta(model, task, config, result, extra=None):
    """The meta.json content that describes a trained model (see attnviz.checkpoint)."""
    test_metrics = evaluate(model, task, "test")
    snapshots = [{"step": s["step"], "patterns": {n: p[:1].round(3).tolist() for n, p in s["patterns"].items()}}
                 for s in thin(result.snapshots, 24)]
    return {"task": task.spec(),
            "train": asdict(config), "history": result.history, "evals": result.evals, "status": result.status,
            "metrics": test_metrics, "train_seconds": result.elapsed, "snapshots": snapshots, **(extra or {})}


def thin(items, n):
    """At most n items, evenly spaced, always keeping the last."""
    if len(items) <= n:
        return list(items)
    return [items[round(i * (len(items) - 1) / (n - 1))] for i in range(n)]
