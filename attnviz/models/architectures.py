"""The one architecture table: every model kind the app and the CLI offer, its config, and how it is built.

    config = model_config("transformer", tokenizer, d_model=64)     # TransformerConfig for that vocabulary
    model = build_model(config)                                       # EncoderDecoder, LanguageModel, ...
    check_size(config)                                                # parameters counted, nothing allocated

`CONFIG_FAMILIES` names the config classes a checkpoint can hold (meta["architecture"]).
"""
import torch

from attnviz.models.config import RNNConfig, TransformerConfig
from attnviz.models.randomness import initialise, use_own_dropout
from attnviz.models.rnn import RNNSeq2Seq
from attnviz.models.transformer import EncoderDecoder, EncoderOnly, LanguageModel

ARCHITECTURES = {
    "transformer": "Transformer encoder-decoder (self-attention, causal self-attention, cross-attention)",
    "lm": "Decoder-only Transformer language model (causal self-attention)",
    "lstm+bahdanau": "LSTM encoder-decoder with Bahdanau attention (additive score on the previous decoder state; "
                     "the context feeds the recurrence)",
    "lstm+luong": "LSTM encoder-decoder with Luong global attention ('general' score s^T W h on the new decoder "
                  "state, input feeding)",
    "lstm+luong-dot": "LSTM encoder-decoder with Luong global attention ('dot' score s^T h, input feeding)",
    "lstm+luong-concat": "LSTM encoder-decoder with Luong global attention ('concat' score, input feeding)",
    "lstm": "LSTM encoder-decoder without attention (Sutskever et al.): the encoder's final state only "
            "initialises the decoder",
    "gru+bahdanau": "GRU encoder-decoder with Bahdanau attention",
    "gru+luong": "GRU encoder-decoder with Luong global attention ('general' score, input feeding)",
    "rnn+bahdanau": "Plain RNN encoder-decoder with Bahdanau attention",
}
RNN_ATTENTION_OF = {"": "none", "bahdanau": "bahdanau", "luong": "luong-general", "luong-dot": "luong-dot",
                    "luong-concat": "luong-concat"}  # the part of an RNN architecture after "+" -> RNNConfig.attention
CONFIG_FAMILIES = {"transformer": TransformerConfig, "rnn": RNNConfig}  # meta["architecture"] -> config class
TRANSFORMER_SIZES = {"d_model": 64, "n_heads": 4, "n_encoder_layers": 1, "n_decoder_layers": 1, "d_ff": 128}
RNN_SIZES = {"embed_dim": 32, "hidden_size": 64, "n_layers": 1}
MAX_PARAMETERS = 5_000_000  # per model: one user cannot take a shared machine's memory, nor a crafted checkpoint


def kind_of(architecture):
    """'lm' for language models, 'seq2seq' for the rest, to match a task's kind."""
    return "lm" if architecture == "lm" else "seq2seq"


def architectures_for(kind):
    """The architectures that fit a task of `kind`: language models for "lm", encoder-decoders for "seq2seq"."""
    return [a for a in ARCHITECTURES if kind_of(a) == kind]


def model_config(architecture, tokenizer, **sizes):
    """The config of `architecture` for a tokenizer's vocabulary; `sizes` override the defaults."""
    vocab = {"src_vocab_size": tokenizer.vocab_size, "tgt_vocab_size": tokenizer.vocab_size, "pad_id": tokenizer.pad_id}
    if architecture in ("transformer", "lm"):
        layers = {"n_encoder_layers": 0} if architecture == "lm" else {}
        return TransformerConfig(**vocab, **{**TRANSFORMER_SIZES, **layers, **sizes})
    if architecture in ARCHITECTURES:
        fixed = sorted({"cell", "attention"} & set(sizes))
        if fixed:
            raise ValueError(f"the architecture name sets {' and '.join(fixed)}: choose another architecture "
                             f"instead of the size {fixed[0]}")
        cell, _, attention = architecture.partition("+")
        return RNNConfig(**vocab, cell=cell, attention=RNN_ATTENTION_OF[attention], **{**RNN_SIZES, **sizes})
    raise ValueError(f"unknown architecture {architecture!r}: choose one of {', '.join(ARCHITECTURES)}")


def family_of(config):
    """The key of CONFIG_FAMILIES for a config ("transformer" or "rnn")."""
    for name, config_class in CONFIG_FAMILIES.items():
        if type(config) is config_class:
            return name
    raise ValueError(f"no model family for a config of type {type(config).__name__}")


def build_model(config, generator=None):
    """The model a config describes (encoder-decoder, decoder-only LM, encoder-only, or an RNN).

    With a `generator`, every weight is drawn from it (not from the global RNG, which concurrent runs share), so
    one seed gives one model however many runs start at once. Its dropout draws from the run's generator too
    (`attnviz.models.randomness`)."""
    if isinstance(config, TransformerConfig):
        if config.encoder_only:
            model = EncoderOnly(config)
        else:
            model = LanguageModel(config) if config.is_language_model else EncoderDecoder(config)
    elif isinstance(config, RNNConfig):
        model = RNNSeq2Seq(config)
    else:
        raise TypeError(f"no model for a config of type {type(config).__name__}")
    if generator is not None:
        initialise(model, generator, xavier=isinstance(config, TransformerConfig))
    return use_own_dropout(model)


def parameter_count(config):
    """Parameters the model of `config` would have, counted on the meta device (nothing is allocated)."""
    with torch.device("meta"):
        return sum(p.numel() for p in build_model(config).parameters())


def check_size(config, limit=MAX_PARAMETERS):
    """The parameter count of `config`, or a ValueError when it is above `limit`."""
    n = parameter_count(config)
    if n > limit:
        raise ValueError(f"this model would have {n:,} parameters; the limit here is {limit:,}: "
                         f"make d_model, d_ff or the number of layers smaller")
    return n
