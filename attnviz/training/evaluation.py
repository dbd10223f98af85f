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

from attnviz.models.ngram import CharNGram


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


def position_losses(model, batch):
    """(B, T) cross entropy of each target position of one batch on the CPU (0 at padding): where in a sequence
    the model has learned to predict, e.g. the repeated half of an induction probe."""
    with evaluating(model):
        batch = batch.to(next(model.parameters()).device)
        logits = model.logits(batch.src, batch.tgt_in).float()  # (B, T, V)
        loss = F.cross_entropy(logits.transpose(1, 2), batch.tgt_out, ignore_index=model.config.pad_id,
                               reduction="none")  # (B, T)
    return loss.cpu()


def evaluate_split(model, task, split="test", max_examples=None, batch_size=256):
    """The metrics a checkpoint records: loss, token accuracy, and exact match (seq2seq) or perplexity and, over
    a whole split, bits per character (LM: the loss in bits over the characters its tokens spell)."""
    metrics = evaluate(model, task.batches(split, batch_size, seed=0), max_examples)
    recorded = {"loss": metrics["loss"], "token_accuracy": metrics["token_accuracy"]}
    if task.kind == "seq2seq":
        return recorded | {"exact_match": metrics["exact_match"]}
    recorded["perplexity"] = math.exp(min(metrics["loss"], 50.0))
    if max_examples is None:  # bits per character compare tokenizers; they need every block's characters
        recorded["bits_per_char"] = metrics["loss"] * metrics["tokens"] / (math.log(2) * task.characters(split))
    return recorded


def baseline_bits_per_char(task, order=5):
    """A language-model task's test bits per character under a smoothed character n-gram fitted on its training
    split (attnviz.models.ngram): the number a trained model's `bits_per_char` is read against."""
    text = lambda split: "".join(task.tokenizer.decode(block) for block in task.examples(split))
    return CharNGram(order).fit(text("train")).bits_per_char(text("test"))
