"""The one evaluation: loss, token accuracy and exact match of a model on batches, in fp32 on its own device.

    with evaluating(model): ...                        # eval mode and no gradients, the model's mode restored after
    metrics = evaluate(model, task.batches("test", 256))
    metrics = evaluate_split(model, task, "test")      # + perplexity for a language model

Training, the checkpoint's recorded metrics, the comparison page, ablation and the CLI all score through
`evaluate`, so a number means the same everywhere. It never runs under autocast, even inside a caller's
`torch.autocast` block (it switches autocast off for the model's device): a model trained in bf16 on a GPU is
scored in fp32, and re-evaluates to the same numbers on a CPU.
"""
import math
from contextlib import contextmanager

import torch
import torch.nn.functional as F


@contextmanager
def evaluating(model):
    """Eval mode (no dropout) and no gradients inside the block; the model's own mode comes back after."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


def batch_totals(logits, batch, pad_id):
    """Summed loss, correct tokens, real tokens, exact sequences, sequences of one batch's (B, T, V) logits.

    Exact match counts sequences whose teacher-forced argmax is right at every position (EOS
    included): that is exactly when greedy decoding reproduces the target, since each greedy step
    then sees the same prefix as teacher forcing.
    """
    real = batch.tgt_out != pad_id  # (B, T)
    loss = F.cross_entropy(logits.float().flatten(0, 1), batch.tgt_out.flatten(), ignore_index=pad_id, reduction="sum")
    right = (logits.argmax(-1) == batch.tgt_out) | ~real  # (B, T)
    return loss.item(), (right & real).sum().item(), real.sum().item(), right.all(1).sum().item(), len(right)


def evaluate(model, batches, max_examples=None, keep_probs=False):
    """{loss, token_accuracy, exact_match, tokens} over `batches` (a model in any mode; it is restored after).

    Loss is the plain cross entropy per real target token (no label smoothing, padding ignored). Stops after
    `max_examples` sequences if given. `keep_probs=True` adds "probs": the (B, T, V) next-token
    probabilities of each batch, in order (for ablation, which compares them before and after).
    """
    device = next(model.parameters()).device
    totals, probs = [0.0] * 5, []
    with evaluating(model), torch.autocast(device.type, enabled=False):
        for batch in batches:
            batch = batch.to(device)
            logits = model.logits(batch.src, batch.tgt_in).float()  # (B, T, V)
            totals = [t + x for t, x in zip(totals, batch_totals(logits, batch, model.config.pad_id))]
            if keep_probs:
                probs.append(logits.softmax(-1))
            if max_examples and totals[4] >= max_examples:
                break
    loss_sum, right, tokens, exact, sequences = totals
    if tokens == 0:
        raise ValueError("nothing to evaluate: the batches have no target tokens (all padding)")
    metrics = {"loss": loss_sum / tokens, "token_accuracy": right / tokens, "exact_match": exact / sequences,
               "tokens": int(tokens)}
    return metrics | ({"probs": probs} if keep_probs else {})


def evaluate_split(model, task, split="test", max_examples=None, batch_size=256):
    """The metrics a checkpoint records: loss, token accuracy, and exact match (seq2seq) or perplexity (LM)."""
    metrics = evaluate(model, task.batches(split, batch_size, seed=0), max_examples)
    recorded = {"loss": metrics["loss"], "token_accuracy": metrics["token_accuracy"]}
    if task.kind == "lm":
        return recorded | {"perplexity": math.exp(min(metrics["loss"], 50.0))}
    return recorded | {"exact_match": metrics["exact_match"]}
