"""Switching heads off: what the model loses on a batch, on a test set, and head by head."""
from dataclasses import dataclass

import pandas as pd
import torch

from attnviz.data.batch import Batch
from attnviz.interpret.patterns import attention_heads
from attnviz.models.hooks import ablate
from attnviz.training.evaluation import evaluate


def scored(model, batch):
    """(loss, token accuracy, target tokens, (B, T, V) probabilities) of one batch, by the one evaluation.

    `batch`: a Batch, or a tuple (src or None, tgt_in, tgt_out)."""
    metrics = evaluate(model, [batch if isinstance(batch, Batch) else Batch(*batch)], keep_probs=True)
    return metrics["loss"], metrics["token_accuracy"], metrics["tokens"], metrics["probs"][0]


@dataclass
class AblationEffect:
    """Loss and token accuracy on one batch with all heads on (before) and the chosen heads off (after),
    and the next-token probabilities at every target position, (B, T, V), before and after."""
    loss_before: float
    loss_after: float
    accuracy_before: float
    accuracy_after: float
    tokens: int
    probs_before: torch.Tensor
    probs_after: torch.Tensor

    @property
    def loss_change(self):
        return self.loss_after - self.loss_before

    @property
    def accuracy_change(self):
        return self.accuracy_after - self.accuracy_before


def intervention_effect(model, batch, intervention):
    """Score one batch as the model is (before) and inside `intervention()`, a context manager (after)."""
    loss_before, accuracy_before, tokens, probs_before = scored(model, batch)
    with intervention():
        loss_after, accuracy_after, _, probs_after = scored(model, batch)
    return AblationEffect(loss_before, loss_after, accuracy_before, accuracy_after, tokens, probs_before, probs_after)


def ablation_effect(model, batch, heads):
    """What switching off `heads`, a set of (attention module name, head index), changes on one batch.

    `batch`: a Batch or a tuple (src or None, tgt_in, tgt_out). The model is scored in eval mode and is not
    changed.
    """
    return intervention_effect(model, batch, lambda: ablate(model, set(heads)))


def summarise(effects):
    """Token-weighted loss and accuracy before/after over the effects of many batches (a test set)."""
    if not effects:
        raise ValueError("no batches to evaluate on")
    tokens = sum(e.tokens for e in effects)
    mean = lambda field: sum(getattr(e, field) * e.tokens for e in effects) / tokens
    summary = {field: mean(field) for field in ("loss_before", "loss_after", "accuracy_before", "accuracy_after")}
    return summary | dict(loss_change=summary["loss_after"] - summary["loss_before"],
                          accuracy_change=summary["accuracy_after"] - summary["accuracy_before"], tokens=tokens)


def ablation_summary(model, batches, heads):
    """`summarise` of switching off `heads` on every batch."""
    return summarise([ablation_effect(model, batch, heads) for batch in batches])


def single_head_effects(model, batch):
    """Switch off each head alone: a table of kind, layer, head, module, loss_change, accuracy_change."""
    loss, accuracy, _, _ = scored(model, batch)
    records = []
    for kind, layer, module, n_heads in attention_heads(model):
        for head in range(n_heads):
            with ablate(model, {(module, head)}):
                loss_off, accuracy_off, _, _ = scored(model, batch)
            records.append(dict(kind=kind, layer=layer, head=head, module=module,
                                loss_change=loss_off - loss, accuracy_change=accuracy_off - accuracy))
    return pd.DataFrame.from_records(records, columns=["kind", "layer", "head", "module", "loss_change",
                                                       "accuracy_change"])
