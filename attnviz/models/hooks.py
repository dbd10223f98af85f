"""HookPoint, capture() and ablate(): the only way attention leaves a model.

A HookPoint is an identity module placed on a tensor worth looking at. Its name comes from
`named_modules()`, so it says where the tensor lives: `decoder.layers.1.cross_attn.hook_pattern`.
Attention modules check `HookPoint.active` and only materialise their weights when someone listens.

Listeners are context-local (`contextvars`), not module hooks: a model cached for a whole class is
shared by every session's thread, and a capture or ablation opened in one thread is seen by that
thread (context) only. Sessions therefore need no lock and run the same model in parallel.
"""
from contextlib import contextmanager
from contextvars import ContextVar

import torch.nn as nn

# {HookPoint: (fn, ...)} listening in this context; each fn(x) returns a replacement for x or None.
_LISTENERS = ContextVar("attnviz_hook_listeners", default={})
# Owners of the module hooks registered by `forward_hooks` that act in this context.
_HOOK_OWNERS = ContextVar("attnviz_forward_hook_owners", default=frozenset())


class HookPoint(nn.Module):
    """Identity module that the current context's listeners can read (capture) or rewrite (ablate)."""

    def forward(self, x):
        for listen in _LISTENERS.get().get(self, ()):
            replaced = listen(x)
            x = x if replaced is None else replaced
        return x

    @property
    def active(self):
        """True when the current context listens here (another session's capture does not count)."""
        return self in _LISTENERS.get()


@contextmanager
def listening(listeners):
    """Add listeners [(hook_point, fn)] for the with-block, in this context only."""
    current = dict(_LISTENERS.get())
    for point, fn in listeners:
        current[point] = (*current.get(point, ()), fn)
    token = _LISTENERS.set(current)
    try:
        yield
    finally:
        _LISTENERS.reset(token)


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
    """Forward hooks [(module, fn)] on any module, for the with-block and the current context only.

    They are real module hooks (removed on the way out, error or not), but each acts only in the context that
    registered it: on a model shared by many sessions, another thread's forward pass runs past them untouched.
    """
    owner = object()

    def for_this_context(fn):
        def hook(*args):
            return fn(*args) if owner in _HOOK_OWNERS.get() else None
        return hook

    token = _HOOK_OWNERS.set(_HOOK_OWNERS.get() | {owner})
    handles = []
    try:
        for module, fn in registrations:
            handles.append(module.register_forward_hook(for_this_context(fn), with_kwargs=with_kwargs))
        yield
    finally:
        for handle in handles:
            handle.remove()
        _HOOK_OWNERS.reset(token)


@contextmanager
def capture(model, names=None):
    """Record hook-point outputs: `with capture(model) as cache: model(...)`.

    `names=None` captures every attention pattern; otherwise the listed hook points (patterns and/or
    `hook_z`). `cache[name]` is a detached tensor; a hook point that fires twice keeps its last value,
    so wrap each `decode_step` on its own to keep every step. Only this context's forward passes record.
    """
    cache = {}

    def recorder(name):
        def record(output):
            cache[name] = output.detach()
        return record

    with listening([(point, recorder(name)) for name, point in _select(model, names).items()]):
        yield cache


def _head_count(module):
    """Heads of an attention module: `n_heads`, or 1 for a single-head (RNN) attention."""
    return getattr(module, "n_heads", 1)


@contextmanager
def ablate(model, heads):
    """Zero the outputs of chosen heads: `heads` is a set of (attention_module_name, head_index).

    An unknown module or a head the layer does not have is refused here, before any forward pass."""
    modules = dict(model.named_modules())
    by_point = {}
    for module_name, head in heads:
        point = modules.get(f"{module_name}.hook_z")
        if not isinstance(point, HookPoint):
            raise KeyError(f"{module_name!r} is not an attention module of this model")
        n_heads = _head_count(modules[module_name])
        if not 0 <= int(head) < n_heads:
            raise IndexError(f"head {head} does not exist: {module_name} has {n_heads} heads (0..{n_heads - 1})")
        by_point.setdefault(point, set()).add(int(head))

    def zero(head_indices):
        def rewrite(z):  # z: (B, Tq, H, d_head)
            z = z.clone()
            z[:, :, sorted(head_indices)] = 0.0
            return z
        return rewrite

    with listening([(point, zero(h)) for point, h in by_point.items()]):
        yield
