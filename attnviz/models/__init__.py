"""Models: configs, hook points, attention, positional encodings, the Transformer, RNNs, the pretrained loader.

Nothing here imports training, decoding or interpretation: a model only computes.
"""
from attnviz.models.architectures import build_model, parameter_count
from attnviz.models.config import RNNConfig, TransformerConfig
from attnviz.models.hooks import ablate, capture, hook_points, pattern_names

__all__ = ["TransformerConfig", "RNNConfig", "build_model", "parameter_count", "capture", "ablate", "hook_points",
           "pattern_names"]
