"""HookPoint, capture() and ablate(): the only way attention leaves a model.

A HookPoint is an identity module placed on a tensor worth looking at. Its name comes from
`named_modules()`, so it says where the tensor lives: `decoder.layers.1.cross_attn.hook_pattern`.
Attention modules check `HookPoint.active` and only materialise their weights when someone listens.
"""
from contextlib import contextmanager

import torch.nn as nn


class HookPoint(nn.Module):
    """Identity module that forward hooks can read (capture) or rewrite (ablate)."""

    def forward(self, x):
        return x

    @property
    def active(self):
        return bool(self._forward_hooks)


def hook_points(model):
    """{name: HookPoint} for every hook point in the model, in module order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, HookPoint)}


def pattern_names(model):
    """Names of all attention-pattern hook points, e.g. `encoder.layers.0.self_attn.hook_pattern`."""
    return [name for name in hook_points(model) if name.endswith("hook_pattern")]


def _select(model, names):
    points = hook_points(model)
    names = pattern_names(model) if names is None else names
    unknown = [n for n in names if n not in points]
    if unknown:
        raise KeyError(f"no hook point named {unknown[0]!r}; known: {', '.join(points)}")
    return {n: points[n] for n in names}


@contextmanager
def forward_hooks(registrations, with_kwargs=False):
    """Forward hooks [(module, fn)] that live for the with-block only: removed on the way out, error or not."""
    handles = []
    try:
        for module, fn in registrations:
            handles.append(module.register_forward_hook(fn, with_kwargs=with_kwargs))
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def capture(model, names=None):
    """Record hook-point outputs: `with capture(model) as cache: model(...)`.

    `names=None` captures every attention pattern; otherwise the listed hook points (patterns and/or
    `hook_z`). `cache[name]` is a detached tensor; a hook point that fires twice keeps its last value,
    so wrap each `decode_step` on its own to keep every step.
    """
    cache = {}

    def recorder(name):
        def record(module, inputs, output):
            cache[name] = output.detach()
        return record

    with forward_hooks([(point, recorder(name)) for name, point in _select(model, names).items()]):
        yield cache


@contextmanager
def ablate(model, heads):
    """Zero the outputs of chosen heads: `heads` is a set of (attention_module_name, head_index)."""
    modules = dict(model.named_modules())
    by_module = {}
    for module_name, head in heads:
        point = modules.get(f"{module_name}.hook_z")
        if not isinstance(point, HookPoint):
            raise KeyError(f"{module_name!r} is not an attention module of this model")
        by_module.setdefault(point, set()).add(int(head))

    def zero(head_indices):
        def hook(module, inputs, z):  # z: (B, Tq, H, d_head)
            if max(head_indices) >= z.shape[2]:
                raise IndexError(f"head {max(head_indices)} does not exist; this layer has {z.shape[2]} heads")
            z = z.clone()
            z[:, :, sorted(head_indices)] = 0.0
            return z
        return hook

    with forward_hooks([(point, zero(h)) for point, h in by_module.items()]):
        yield
