"""attnviz: a small, hookable PyTorch Transformer for learning how attention works."""
from attnviz.config import TransformerConfig
from attnviz.hooks import ablate, capture, hook_points, pattern_names
from attnviz.transformer import EncoderDecoder, LanguageModel


def build_model(config):
    """The model a config describes (encoder-decoder or decoder-only LM)."""
    if isinstance(config, TransformerConfig):
        return LanguageModel(config) if config.is_language_model else EncoderDecoder(config)
    raise TypeError(f"no model for a config of type {type(config).__name__}")


__all__ = ["TransformerConfig", "build_model", "capture", "ablate", "hook_points", "pattern_names",
           "EncoderDecoder", "LanguageModel"]
