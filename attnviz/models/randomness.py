"""A model's randomness from its own torch.Generator: initialisation and dropout, never the global RNG.

Runs of many students train in one process at once. The global RNG (`torch.manual_seed`) is shared by them
all, so two runs of one preset and seed would interleave their draws and train different weights. Here:

- `initialise(model, generator)` redraws every parameter from `generator`, with PyTorch's own default
  initialisations (Linear, Embedding, RNN/GRU/LSTM) and then the Transformer's Xavier start; a learned
  positional table keeps its N(0, 0.02) start.
- `Dropout` (which `build_model` puts in place of every `nn.Dropout`) and `dropout()` (attention weights) draw
  their masks from the generator that `using_generator(generator)` set for the current context (thread). The
  training loop sets its run's generator; outside a run (no generator set) they fall back to the global RNG.

Not covered: the dropout *between* stacked layers inside `nn.LSTM`/`nn.GRU` (its `dropout=` argument) is
drawn by PyTorch's kernel from the global RNG; a run with `n_layers > 1` and dropout > 0 is reproducible
only when it trains alone.
"""
import math
from contextlib import contextmanager
from contextvars import ContextVar

import torch
import torch.nn as nn
import torch.nn.functional as F

_GENERATOR = ContextVar("attnviz_run_generator", default=None)


@contextmanager
def using_generator(generator):
    """Dropout in this context (thread) draws from `generator` inside the block."""
    token = _GENERATOR.set(generator)
    try:
        yield generator
    finally:
        _GENERATOR.reset(token)


def dropout(x, p, training=True):
    """Inverted dropout with a mask from the current context's generator (the global RNG if none is set)."""
    if not training or p == 0.0:
        return x
    generator = _GENERATOR.get()
    if generator is None:
        return F.dropout(x, p, training)
    keep = torch.rand(x.shape, generator=generator, device=generator.device) >= p  # same shape as x
    return x * keep.to(x.device, x.dtype) / (1.0 - p)


class Dropout(nn.Dropout):
    """nn.Dropout whose mask comes from the run's generator (see `using_generator`)."""

    def forward(self, x):
        return dropout(x, self.p, self.training)


def use_own_dropout(model):
    """Put a `Dropout` in place of every plain `nn.Dropout` of the model (same probability); returns the model."""
    for parent in model.modules():
        for name, child in parent.named_children():
            if type(child) is nn.Dropout:
                setattr(parent, name, Dropout(child.p))
    return model


def _default_init(module, generator):
    """PyTorch's default initialisation of the module's own parameters, drawn from `generator`; the parameters set."""
    if isinstance(module, nn.Linear):
        nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
        if module.bias is not None:
            bound = 1 / math.sqrt(module.weight.shape[1]) if module.weight.shape[1] else 0.0
            nn.init.uniform_(module.bias, -bound, bound, generator=generator)
        return [module.weight, module.bias]
    if isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, generator=generator)
        if module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
        return [module.weight]
    if isinstance(module, nn.RNNBase):
        bound = 1 / math.sqrt(module.hidden_size)
        for p in module.parameters():
            nn.init.uniform_(p, -bound, bound, generator=generator)
        return list(module.parameters())
    if isinstance(module, nn.LayerNorm):
        if module.elementwise_affine:
            nn.init.ones_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        return [module.weight, module.bias]
    table = getattr(module, "table", None)
    if getattr(module, "kind", None) == "learned" and isinstance(table, nn.Parameter):  # a learned positional table
        nn.init.normal_(table, 0.0, 0.02, generator=generator)
        return [table]
    return []


@torch.no_grad()
def initialise(model, generator, xavier=False):
    """Redraw every parameter of `model` from `generator` (in module order), then Xavier-uniform for every weight
    matrix but a learned positional table when `xavier`; returns the model. A parameter of a kind not known here
    is an error rather than a draw from the global RNG."""
    done = {id(p) for module in model.modules() for p in _default_init(module, generator) if p is not None}
    missed = [name for name, p in model.named_parameters() if id(p) not in done]
    if missed:
        raise TypeError(f"no initialisation from a generator for {', '.join(missed)}")
    if xavier:
        own_start = {id(m.table) for m in model.modules() if getattr(m, "kind", None) == "learned"
                     and isinstance(getattr(m, "table", None), nn.Parameter)}
        for p in model.parameters():
            if p.dim() > 1 and id(p) not in own_start:
                nn.init.xavier_uniform_(p, generator=generator)
    return model
