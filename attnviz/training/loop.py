"""The training loop: AdamW with warm-up and cosine decay, a NaN guard, evaluations and attention snapshots.

    result = train(model, task, TrainConfig(steps=600))   # blocking; fills a TrainResult as it goes

`history["loss"]` is the plain cross entropy of each training batch, the same measure as the validation loss,
whatever label smoothing the gradient uses.

The loop trains in one process by default (`ONE_PROCESS`); attnviz.training.distributed passes a `DataParallel`
instead, so the same loop trains one model on several ranks (each its shard of every batch, the gradients
averaged by DistributedDataParallel, only rank 0 evaluating).
"""
import math
import threading
import time
from dataclasses import dataclass, field

import torch

from attnviz.data.tokenizers import BOS
from attnviz.decoding import greedy
from attnviz.i18n import N_, Message
from attnviz.models.hooks import capture
from attnviz.models.randomness import using_generator
from attnviz.training.device import autocast, autocast_plan, pick_device
from attnviz.training.evaluation import evaluate_split, evaluating, position_losses


def learning_rate(step, config):
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    progress = min(1.0, (step - config.warmup) / max(1, config.steps - config.warmup))
    return config.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def parameter_groups(model, weight_decay):
    """AdamW groups as in nanoGPT: weight matrices and embeddings (2 or more dims) decay; biases, LayerNorm
    gains and other vectors do not (decaying them only pulls shifts and scales towards zero)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]


def training_losses(logits, targets, smoothing, pad_id, bos_id=BOS):
    """(loss to minimise, plain cross entropy) per real target token of (B, T, V) logits and (B, T) targets.

    With smoothing eps the target distribution is (1 - eps) on the right token plus eps spread evenly over the
    tokens that can be targets: every id except PAD and BOS (a target is never padding or a sequence start).
    Both losses come from one log-softmax, so the plain one costs no extra forward pass.
    """
    log_probs = logits.float().log_softmax(-1)  # (B, T, V)
    real = targets != pad_id  # (B, T)
    nll = -log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (B, T)
    cross_entropy = nll[real].mean()
    if not smoothing:
        return cross_entropy, cross_entropy.detach()
    can_be_target = torch.ones(logits.shape[-1], dtype=torch.bool, device=logits.device)  # (V,)
    can_be_target[[pad_id, bos_id]] = False
    uniform = -log_probs[..., can_be_target].mean(-1)  # (B, T): cross entropy against the uniform part
    smoothed = ((1 - smoothing) * nll + smoothing * uniform)[real].mean()
    return smoothed, cross_entropy.detach()


def attention_snapshot(model, probe_batch):
    """Every attention pattern of the probe inputs, as float16 arrays {name: (P, H, Tq, Tk)}."""
    with evaluating(model), capture(model) as cache:
        model.logits(probe_batch.src, probe_batch.tgt_in)
    return {name: pattern.float().cpu().half().numpy() for name, pattern in cache.items()}


LM_PROMPT_TOKENS, LM_CONTINUATION_TOKENS = 8, 16


def probe_outputs(model, task, probe_batch):
    """The greedy outputs of the probe inputs as text: seq2seq from the source, an LM continuing the
    first LM_PROMPT_TOKENS tokens of each probe."""
    with evaluating(model):
        if task.kind == "seq2seq":
            decoded = greedy(model, task.tokenizer, probe_batch.src, probe_batch.tgt_out.shape[1] + 4, trace=False)
        else:
            prompt = probe_batch.tgt_in[:, :1 + min(LM_PROMPT_TOKENS, min(map(len, task.probes)) - 1)]  # BOS + tokens
            decoded = greedy(model, task.tokenizer, prompt, LM_CONTINUATION_TOKENS, trace=False)
    return [task.tokenizer.decode(decoded.ids(row)) for row in range(len(decoded.tokens))]


class OneProcess:
    """The loop's view of its ranks when there is one: the whole batch, nothing to agree on, this is rank 0."""
    is_main = True

    def wrap(self, model):
        """The (B, T, V) logits call the loop trains through."""
        return model.logits

    def shard(self, batch):
        """(this rank's part of the batch, the weight of its mean loss in the mean over the whole batch)."""
        return batch, 1.0

    def agree(self, code):
        """The largest of every rank's code (so one rank's stop stops all)."""
        return code

    def batch_mean(self, weighted_loss, finite):
        """(the whole batch's cross entropy, whether every rank's loss and gradients are finite)."""
        return weighted_loss.item(), bool(finite)


ONE_PROCESS = OneProcess()
GO_ON, BUDGET_SPENT, STOP_ASKED = 0, 1, 2  # what a step's `agree` decides, the largest winning


@dataclass
class TrainResult:
    status: str = "running"  # queued | running | done | stopped | diverged | failed
    error: str = ""  # English; an attnviz.i18n.Message when the run itself words it (the page translates it)
    step: int = 0
    elapsed: float = 0.0  # seconds spent training (evaluation excluded)
    history: dict = field(default_factory=lambda: {"step": [], "loss": [], "lr": [], "tokens_per_s": [], "time": []})
    evals: dict = field(default_factory=lambda: {"step": [], "time": []})  # plus one list per metric
    snapshots: list = field(default_factory=list)  # [{"step": s, "patterns": {...}, "outputs": [probe text]}]
    metrics: dict = field(default_factory=dict)  # latest validation metrics
    reached_target_at: float | None = None  # training seconds when target_exact_match was first reached
    notes: list = field(default_factory=list)  # what the run changed about itself, e.g. bf16 autocast off


def train(model, task, config, result=None, should_stop=lambda: False, lock=None, clock=time.perf_counter,
          ranks=ONE_PROCESS):
    """Train in place and fill `result` (a TrainResult) as it goes; returns it.

    `lock` guards every write to `result` so another thread can copy it consistently. `clock` measures
    training time (benchmarks pass `time.process_time`, which other work on the machine hardly inflates).
    A NaN/inf loss or gradient stops the run with the last good weights restored. On CUDA the forward pass runs
    under bf16 autocast unless the model's recurrent cells fail it on this GPU (then fp32, and a note says so).
    Dropout draws from the run's own
    generator (seeded with `config.seed`), so runs training at once in one process do not disturb each other.
    `ranks` is this process's place among data-parallel processes (see attnviz.training.distributed).
    """
    with using_generator(torch.Generator().manual_seed(config.seed)):
        return _train(model, task, config, result or TrainResult(), should_stop, lock or threading.Lock(), clock,
                      ranks)


def _train(model, task, config, result, should_stop, lock, clock, ranks):
    device = pick_device(config.device)
    model.to(device).train()
    use_autocast, notes = autocast_plan(device, model)
    pad_id = model.config.pad_id
    logits_of = ranks.wrap(model)
    optimizer = torch.optim.AdamW(parameter_groups(model, config.weight_decay), lr=config.lr, betas=(0.9, 0.98))
    params = list(model.parameters())
    last_good = [p.detach().clone() for p in params]
    batches = task.batches("train", config.batch_size, seed=config.seed)
    probes = task.collate(task.probes).to(device) if config.snapshot_every and ranks.is_main else None
    tokens_seen, started = 0, clock()
    eval_time = 0.0
    with lock:
        result.status = "running"
        result.notes += notes
    for step in range(1, config.steps + 1):
        elapsed = clock() - started - eval_time
        spent = bool(config.time_budget) and elapsed >= config.time_budget
        decision = ranks.agree(STOP_ASKED if should_stop() else BUDGET_SPENT if spent else GO_ON)
        if decision != GO_ON:
            with lock:
                result.status = "stopped" if decision == STOP_ASKED else "done"
            break
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step - 1, config)
        batch = next(batches).to(device)
        batch_tokens = batch.n_tokens
        batch, weight = ranks.shard(batch)
        with autocast(device, use_autocast):
            logits = logits_of(batch.src, batch.tgt_in)  # (B, T, V)
        loss, cross_entropy = training_losses(logits, batch.tgt_out, config.label_smoothing, pad_id)
        optimizer.zero_grad(set_to_none=True)
        (loss * weight).backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, config.clip or float("inf"))
        finite = torch.isfinite(loss) & torch.isfinite(grad_norm)
        cross_entropy, finite = ranks.batch_mean(cross_entropy * weight, finite)  # the whole batch's, on every rank
        if not finite:
            restore(params, last_good)
            with lock:
                result.status, result.step = "diverged", step
                result.error = Message(N_("the loss became {loss} at step {step}: training stopped and the weights "
                                          "of step {kept} were kept. Lower the learning rate (it was {lr})."),
                                       loss=cross_entropy, step=step, kept=step - 1, lr=f"{config.lr:g}")
            return result
        restore(last_good, params)  # these weights gave a finite loss and gradient
        optimizer.step()
        tokens_seen += batch_tokens
        elapsed = clock() - started - eval_time
        with lock:
            for key, value in (("step", step), ("loss", cross_entropy), ("lr", optimizer.param_groups[0]["lr"]),
                               ("tokens_per_s", tokens_seen / max(elapsed, 1e-9)), ("time", elapsed)):
                result.history[key].append(value)
            result.step, result.elapsed = step, elapsed
        eval_started = clock()
        if probes is not None and (step % config.snapshot_every == 0 or step == 1):
            patterns, outputs = attention_snapshot(model, probes), probe_outputs(model, task, probes)
            losses = position_losses(model, probes).half().numpy()  # (P, T): the loss at each probe position
            with lock:
                result.snapshots.append({"step": step, "patterns": patterns, "outputs": outputs, "losses": losses})
        if step % config.eval_every == 0 or step == config.steps:
            if ranks.is_main:
                record_eval(model, task, config, result, lock, step, elapsed)
            target = config.target_exact_match
            reached = bool(target) and result.metrics.get("exact_match", 0) >= target
            if ranks.agree(BUDGET_SPENT if reached else GO_ON) != GO_ON:
                with lock:
                    result.status = "done"
                break
        eval_time += clock() - eval_started
    else:
        with lock:
            result.status = "done"
    if ranks.is_main and (not result.evals["step"] or result.evals["step"][-1] != result.step):
        record_eval(model, task, config, result, lock, result.step, result.elapsed)
    return result


@torch.no_grad()
def restore(targets, sources):
    for target, source in zip(targets, sources):
        target.copy_(source)


def record_eval(model, task, config, result, lock, step, elapsed):
    metrics = evaluate_split(model, task, "val", max_examples=config.eval_examples)
    with lock:
        result.metrics = metrics
        for name, value in {"step": step, "time": elapsed, **metrics}.items():
            result.evals.setdefault(name, []).append(value)
        target = config.target_exact_match
        if target and result.reached_target_at is None and metrics.get("exact_match", 0) >= target:
            result.reached_target_at = elapsed
