"""attnviz: a small, hookable PyTorch Transformer for learning how attention works."""
import torch

from attnviz.config import RNNConfig, TransformerConfig
from attnviz.hooks import ablate, capture, hook_points, pattern_names
from attnviz.rnn import RNNSeq2Seq
from attnviz.transformer import EncoderDecoder, EncoderOnly, LanguageModel


def build_model(config):
    """The model a config describes (encoder-decoder, decoder-only LM or encoder-only)."""
    if isinstance(config, TransformerConfig):
        if config.encoder_only:
            return EncoderOnly(config)
        return LanguageModel(config) if config.is_language_model else EncoderDecoder(config)
    if isinstance(config, RNNConfig):
        return RNNSeq2Seq(config)
    raise TypeError(f"no model for a config of type {type(config).__name__}")


def parameter_count(config):
    """Parameters the model of `config` would have, counted on the meta device (nothing is allocated)."""
    with torch.device("meta"):
        return sum(p.numel() for p in build_model(config).parameters())


__all__ = ["TransformerConfig", "RNNConfig", "RNNSeq2Seq", "build_model", "parameter_count", "capture", "ablate",
           "hook_points", "pattern_names", "EncoderDecoder", "EncoderOnly", "LanguageModel"]
