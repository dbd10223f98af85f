"""Attention patterns by name: which kind and layer a hook point holds, and the heads a model has.

Patterns are (B, H, Tq, Tk) tensors as `capture` returns them, named like `decoder.layers.1.cross_attn.hook_pattern`;
the kind ("encoder self", "decoder self", "cross") and the layer are read from that name.
"""
import re

import torch

from attnviz.models.hooks import pattern_names


KINDS = ("encoder self", "decoder self", "cross")
PATTERN_NAME = re.compile(r"^(encoder|decoder)\.(?:layers\.(\d+)\.)?(self_attn|cross_attn|attention)\.hook_pattern$")


def parse_pattern_name(name):
    """`decoder.layers.1.cross_attn.hook_pattern` -> ("cross", 1, "decoder.layers.1.cross_attn").

    The RNN's `decoder.attention.hook_pattern` is cross-attention of layer 0.
    """
    match = PATTERN_NAME.match(name)
    if match is None:
        raise ValueError(f"{name!r} is not an attention-pattern hook name like 'encoder.layers.0.self_attn.hook_pattern'")
    side, layer, module = match.groups()
    kind = f"{side} self" if module == "self_attn" else "cross"
    return kind, int(layer or 0), name.removesuffix(".hook_pattern")


def patterns_of(cache, kind, row=0):
    """All layers of one kind for batch row `row`, stacked: (L, H, Tq, Tk)."""
    found = {}
    for name, pattern in cache.items():
        if name.endswith("hook_pattern") and parse_pattern_name(name)[0] == kind:
            found[parse_pattern_name(name)[1]] = pattern[row]  # (H, Tq, Tk)
    if not found:
        kinds = sorted({parse_pattern_name(n)[0] for n in cache if n.endswith("hook_pattern")})
        raise ValueError(f"this capture has no {kind} attention; it has: {', '.join(kinds) or 'none'}")
    return torch.stack([found[layer] for layer in sorted(found)])  # (L, H, Tq, Tk)


def attention_heads(model):
    """[(kind, layer, module name, number of heads)] for every attention module of the model."""
    modules = dict(model.named_modules())
    heads = []
    for name in pattern_names(model):
        kind, layer, module = parse_pattern_name(name)
        heads.append((kind, layer, module, getattr(modules[module], "n_heads", 1)))
    return heads
