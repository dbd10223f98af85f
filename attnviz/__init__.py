"""attnviz: a small, hookable PyTorch Transformer for learning how attention works.

Layers, each importing only from those before it:
    checks -> models, data -> decoding -> training -> interpret -> app -> cli, bench, classroom
"""
from attnviz.models import RNNConfig, TransformerConfig, ablate, build_model, capture, hook_points, pattern_names
from attnviz.models.rnn import RNNSeq2Seq
from attnviz.models.transformer import EncoderDecoder, EncoderOnly, LanguageModel

__all__ = ["TransformerConfig", "RNNConfig", "RNNSeq2Seq", "build_model", "capture", "ablate",
           "hook_points", "pattern_names", "EncoderDecoder", "EncoderOnly", "LanguageModel"]
