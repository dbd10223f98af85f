"""The one architecture table: every model kind the app and the CLI offer, its config, and how it is built.

    config = model_config("transformer", tokenizer, d_model=64)     # TransformerConfig for that vocabulary
    model = build_model(config)                                       # EncoderDecoder, LanguageModel, ...
    check_size(config)                                                # parameters counted, nothing built

`CONFIG_FAMILIES` names the config classes a checkpoint can hold (meta["architecture"]).
"""
from dataclasses import fields

from attnviz.models.config import RNNConfig, TransformerConfig
from attnviz.models.rnn import RNNSeq2Seq
from attnviz.models.transformer import EncoderDecoder, EncoderOnly, LanguageModel

ARCHITECTURES = {
    "transformer": "Transformer encoder-decoder (self-attention, causal self-attention, cross-attention)",
    "lm": "Decoder-only Transformer language model (causal self-attention)",
    "lstm+attention": "LSTM encoder-decoder with additive (Bahdanau) attention",
    "lstm": "LSTM encoder-decoder without attention: one fixed-size context vector",
    "gru+attention": "GRU encoder-decoder with additive (Bahdanau) attention",
    "rnn+attention": "Plain RNN encoder-decoder with additive (Bahdanau) attention",
}
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


FROM_TOKENIZER = ("src_vocab_size", "tgt_vocab_size", "pad_id")


def _fixed_by(architecture):
    """The config class of `architecture` and the fields the architecture itself sets."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}: choose one of {', '.join(ARCHITECTURES)}")
    if architecture == "transformer":
        return TransformerConfig, {"encoder_only"}
    if architecture == "lm":
        return TransformerConfig, {"encoder_only", "n_encoder_layers"}
    return RNNConfig, {"cell", "attention"}


def size_keys(architecture):
    """The config fields a user may set for `architecture`: all but those the tokenizer and the architecture fix."""
    config_class, fixed = _fixed_by(architecture)
    return [f.name for f in fields(config_class) if f.name not in fixed and f.name not in FROM_TOKENIZER]


def model_config(architecture, tokenizer, **sizes):
    """The config of `architecture` for a tokenizer's vocabulary; `sizes` override the defaults (a ValueError
    names a key that is not one of `size_keys(architecture)`)."""
    config_class, fixed = _fixed_by(architecture)
    for key in sizes:
        if key not in size_keys(architecture):
            why = ("comes from the tokenizer" if key in FROM_TOKENIZER else
                   f"is set by the architecture {architecture!r}" if key in fixed else
                   f"is not a setting of the {architecture} architecture")
            raise ValueError(f"{key} {why}; the sizes you can set are {', '.join(size_keys(architecture))}")
    vocab = {"src_vocab_size": tokenizer.vocab_size, "tgt_vocab_size": tokenizer.vocab_size, "pad_id": tokenizer.pad_id}
    if config_class is TransformerConfig:
        layers = {"n_encoder_layers": 0} if architecture == "lm" else {}
        return TransformerConfig(**vocab, **{**TRANSFORMER_SIZES, **layers, **sizes})
    cell, _, attention = architecture.partition("+")
    return RNNConfig(**vocab, cell=cell, attention="bahdanau" if attention else "none", **{**RNN_SIZES, **sizes})


def family_of(config):
    """The key of CONFIG_FAMILIES for a config ("transformer" or "rnn")."""
    for name, config_class in CONFIG_FAMILIES.items():
        if type(config) is config_class:
            return name
    raise ValueError(f"no model family for a config of type {type(config).__name__}")


def build_model(config):
    """The model a config describes (encoder-decoder, decoder-only LM, encoder-only, or an RNN)."""
    if isinstance(config, TransformerConfig):
        if config.encoder_only:
            return EncoderOnly(config)
        return LanguageModel(config) if config.is_language_model else EncoderDecoder(config)
    if isinstance(config, RNNConfig):
        return RNNSeq2Seq(config)
    raise TypeError(f"no model for a config of type {type(config).__name__}")


# ---------------------------------------------------------------------------------------------- size, by arithmetic
# The size of the model a config describes, counted from the config alone: building it, even on the meta device,
# takes seconds for thousands of layers, and a sinusoidal table is a buffer that no parameter count sees. Each
# count follows the modules that transformer.py and rnn.py build, one line per module; a test compares them with
# real models. Numbers are kept per part of the model, labelled with the config fields that size it, so that a
# refusal can say which fields to make smaller.


def linear(n_in, n_out, bias=True):
    return n_in * n_out + (n_out if bias else 0)


class Tally:
    """Numbers a model holds, per part: {label: parameters} and {label: buffer values}."""

    def __init__(self):
        self.parameters, self.buffers = {}, {}

    def add(self, part, parameters=0, buffers=0):
        self.parameters[part] = self.parameters.get(part, 0) + parameters
        self.buffers[part] = self.buffers.get(part, 0) + buffers

    def total(self):
        return sum(self.parameters.values()) + sum(self.buffers.values())

    def largest(self):
        return max(self.parameters, key=lambda part: self.parameters[part] + self.buffers[part])


def _transformer_embedding(tally, config, vocab_field):
    """Embedding: token table, positional table (learned: parameters; sinusoidal: a buffer), token types, norm."""
    D = config.d_model
    tally.add(f"token embeddings ({vocab_field}={getattr(config, vocab_field)} x d_model={D})",
              getattr(config, vocab_field) * D)
    table = config.max_len * D if config.positional != "none" else 0
    tally.add(f"positional tables (max_len={config.max_len} x d_model={D})",
              **{"parameters" if config.positional == "learned" else "buffers": table})
    tally.add(f"token-type embeddings (n_token_types={config.n_token_types} x d_model={D})", config.n_token_types * D)
    tally.add(f"layer norms (d_model={D})", 2 * D if config.embedding_norm else 0)


def _transformer_tally(config):
    D, tally = config.d_model, Tally()
    attention = 4 * linear(D, D)  # q_proj, k_proj, v_proj, out_proj
    feed_forward = linear(D, config.d_ff) + linear(config.d_ff, D)
    norm = 2 * D
    final_norm = norm if config.norm_first else 0
    widths = f"d_model={D}, d_ff={config.d_ff}"
    if not config.is_language_model:  # the encoder
        _transformer_embedding(tally, config, "src_vocab_size")
        tally.add(f"encoder layers (n_encoder_layers={config.n_encoder_layers}, {widths})",
                  config.n_encoder_layers * (attention + feed_forward + 2 * norm))
        tally.add(f"layer norms (d_model={D})", final_norm)
    if not config.encoder_only:  # the decoder and its output projection
        cross = 0 if config.is_language_model else attention
        _transformer_embedding(tally, config, "tgt_vocab_size")
        tally.add(f"decoder layers (n_decoder_layers={config.n_decoder_layers}, {widths})",
                  config.n_decoder_layers * (attention + cross + feed_forward + 3 * norm))
        tally.add(f"layer norms (d_model={D})", final_norm)
        tally.add(f"output projection (d_model={D} x tgt_vocab_size={config.tgt_vocab_size})",
                  0 if config.tie_embeddings else D * config.tgt_vocab_size)  # lm_head, no bias
    return tally


RNN_GATES = {"rnn": 1, "gru": 3, "lstm": 4}  # weight blocks per layer in torch.nn.RNN, GRU, LSTM


def rnn_stack(cell, input_size, hidden_size, n_layers, directions=1):
    """Parameters of torch.nn.RNN/GRU/LSTM: per layer and direction W_ih, W_hh, b_ih, b_hh for each gate."""
    gates, total = RNN_GATES[cell], 0
    for layer in range(n_layers):
        layer_input = input_size if layer == 0 else hidden_size * directions
        total += directions * gates * hidden_size * (layer_input + hidden_size + 2)
    return total


def rnn_attention(kind, H):
    """The decoder's attention over encoder states of size H: AdditiveAttention or MultiplicativeAttention."""
    return {"bahdanau": 2 * H * H + H, "luong": H * H}.get(kind, 0)  # W_q, W_k, v / W


def _rnn_tally(config):
    E, H, L, tally = config.embed_dim, config.hidden_size, config.n_layers, Tally()
    directions = 2 if config.bidirectional else 1
    layers = f"recurrent layers (n_layers={L}, embed_dim={E}, hidden_size={H})"
    tally.add(f"token embeddings (src_vocab_size={config.src_vocab_size} x embed_dim={E})",
              config.src_vocab_size * E)  # encoder.embed
    tally.add(layers, rnn_stack(config.cell, E, H // directions, L, directions))  # encoder.rnn
    tally.add(f"token embeddings (tgt_vocab_size={config.tgt_vocab_size} x embed_dim={E})",
              config.tgt_vocab_size * E)  # decoder.embed
    tally.add(layers, rnn_stack(config.cell, E, H, L))  # decoder.rnn
    tally.add(f"attention (hidden_size={H})", rnn_attention(config.attention, H)  # decoder.attention
              + (linear(2 * H, H) if config.attention != "none" else 0))  # decoder.combine
    tally.add(f"output projection (hidden_size={H} x tgt_vocab_size={config.tgt_vocab_size})",
              linear(H, config.tgt_vocab_size))  # lm_head
    return tally


def tally(config):
    """The `Tally` of the model `config` describes, counted without building anything."""
    if isinstance(config, TransformerConfig):
        return _transformer_tally(config)
    if isinstance(config, RNNConfig):
        return _rnn_tally(config)
    raise TypeError(f"no model for a config of type {type(config).__name__}")


def parameter_count(config):
    """Parameters the model of `config` would have (each shared tensor once), counted from the config alone."""
    return sum(tally(config).parameters.values())


def check_size(config, limit=MAX_PARAMETERS):
    """The parameter count of `config`, or a ValueError naming the field to shrink when its parameters and buffers
    together are above `limit`."""
    counted = tally(config)
    n, buffers = sum(counted.parameters.values()), sum(counted.buffers.values())
    if counted.total() > limit:
        raise ValueError(f"this model would have {n:,} parameters" + (f" and {buffers:,} buffer values" if buffers else "")
                         + f"; the limit here is {limit:,} in all. Most are in the {counted.largest()}: "
                           "make those smaller")
    return n
