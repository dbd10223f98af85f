"""The one architecture table: every model kind the app and the CLI offer, its config, and how it is built.

    config = model_config("transformer", tokenizer, d_model=64)     # TransformerConfig for that vocabulary
    model = build_model(config)                                       # EncoderDecoder, LanguageModel, ...
    check_size(config)                                                # parameters counted, nothing built

`CONFIG_FAMILIES` names the config classes a checkpoint can hold (meta["architecture"]). An architecture's description
(ARCHITECTURES) is English, marked for the catalog: show it as `_(ARCHITECTURES[name])` (attnviz.i18n).
"""
from dataclasses import fields

import torch

from attnviz.checks import reject
from attnviz.i18n import N_, _
from attnviz.models.config import RNNConfig, TransformerConfig
from attnviz.models.randomness import initialise, use_own_dropout
from attnviz.models.rnn import RNNSeq2Seq
from attnviz.models.transformer import EncoderDecoder, EncoderOnly, LanguageModel

ARCHITECTURES = {
    "transformer": N_("Transformer encoder-decoder (self-attention, causal self-attention, cross-attention)"),
    "lm": N_("Decoder-only Transformer language model (causal self-attention)"),
    "lstm+bahdanau": N_("LSTM encoder-decoder with Bahdanau attention (additive score on the previous decoder state; "
                        "the context feeds the recurrence)"),
    "lstm+luong": N_("LSTM encoder-decoder with Luong global attention ('general' score s^T W h on the new decoder "
                     "state, input feeding)"),
    "lstm+luong-dot": N_("LSTM encoder-decoder with Luong global attention ('dot' score s^T h, input feeding)"),
    "lstm+luong-concat": N_("LSTM encoder-decoder with Luong global attention ('concat' score, input feeding)"),
    "lstm": N_("LSTM encoder-decoder without attention (Sutskever et al.): the encoder's final state only "
               "initialises the decoder"),
    "gru+bahdanau": N_("GRU encoder-decoder with Bahdanau attention"),
    "gru+luong": N_("GRU encoder-decoder with Luong global attention ('general' score, input feeding)"),
    "rnn+bahdanau": N_("Plain RNN encoder-decoder with Bahdanau attention"),
    "rnn": N_("Plain (tanh) RNN encoder-decoder without attention: the classic case of the fading gradient"),
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


FROM_TOKENIZER = ("src_vocab_size", "tgt_vocab_size", "pad_id")


def _fixed_by(architecture):
    """The config class of `architecture` and the fields the architecture itself sets."""
    if architecture not in ARCHITECTURES:
        raise ValueError(_("unknown architecture {architecture}: choose one of {choices}").format(
            architecture=repr(architecture), choices=", ".join(ARCHITECTURES)))
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
            why = (_("{key} comes from the tokenizer") if key in FROM_TOKENIZER else
                   _("{key} is set by the architecture {architecture}") if key in fixed else
                   _("{key} is not a setting of the {architecture} architecture"))
            raise ValueError(_("{refusal}; the sizes you can set are {sizes}").format(
                refusal=why.format(key=key, architecture=repr(architecture) if key in fixed else architecture),
                sizes=", ".join(size_keys(architecture))))
    vocab = {"src_vocab_size": tokenizer.vocab_size, "tgt_vocab_size": tokenizer.vocab_size, "pad_id": tokenizer.pad_id}
    if config_class is TransformerConfig:
        if architecture == "transformer" and sizes.get("n_encoder_layers") == 0:  # that config is the "lm" one
            reject("n_encoder_layers", 0, _("an encoder-decoder needs 1 or more encoder layers (the lm architecture "
                                            "is the decoder-only Transformer)"))
        layers = {"n_encoder_layers": 0} if architecture == "lm" else {}
        return TransformerConfig(**vocab, **{**TRANSFORMER_SIZES, **layers, **sizes})
    cell, _plus, attention = architecture.partition("+")
    return RNNConfig(**vocab, cell=cell, attention=RNN_ATTENTION_OF[attention], **{**RNN_SIZES, **sizes})


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
    D, vocab = config.d_model, getattr(config, vocab_field)
    tally.add(_("token embeddings ({field}={size} x d_model={d_model})").format(
        field=vocab_field, size=vocab, d_model=D), vocab * D)
    table = config.max_len * D if config.positional != "none" else 0
    tally.add(_("positional tables (max_len={max_len} x d_model={d_model})").format(max_len=config.max_len, d_model=D),
              **{"parameters" if config.positional == "learned" else "buffers": table})
    tally.add(_("token-type embeddings (n_token_types={n_token_types} x d_model={d_model})").format(
        n_token_types=config.n_token_types, d_model=D), config.n_token_types * D)
    tally.add(_("layer norms (d_model={d_model})").format(d_model=D), 2 * D if config.embedding_norm else 0)


def _transformer_tally(config):
    D, tally = config.d_model, Tally()
    attention = 4 * linear(D, D)  # q_proj, k_proj, v_proj, out_proj
    norm = 2 * D
    feed_forward = linear(D, config.d_ff) + linear(config.d_ff, D) + norm if config.d_ff else 0  # + its norm
    final_norm = norm if config.norm_first else 0
    widths, norms = f"d_model={D}, d_ff={config.d_ff}", _("layer norms (d_model={d_model})").format(d_model=D)
    if not config.is_language_model:  # the encoder
        _transformer_embedding(tally, config, "src_vocab_size")
        tally.add(_("encoder layers (n_encoder_layers={layers}, {widths})").format(
            layers=config.n_encoder_layers, widths=widths), config.n_encoder_layers * (attention + feed_forward + norm))
        tally.add(norms, final_norm)
    if not config.encoder_only:  # the decoder and its output projection
        cross = 0 if config.is_language_model else attention
        _transformer_embedding(tally, config, "tgt_vocab_size")
        tally.add(_("decoder layers (n_decoder_layers={layers}, {widths})").format(
            layers=config.n_decoder_layers, widths=widths),
            config.n_decoder_layers * (attention + cross + feed_forward + 2 * norm))
        tally.add(norms, final_norm)
        tally.add(_("output projection (d_model={d_model} x tgt_vocab_size={vocab})").format(  # lm_head, no bias
            d_model=D, vocab=config.tgt_vocab_size), 0 if config.tie_embeddings else D * config.tgt_vocab_size)
    return tally


RNN_GATES = {"rnn": 1, "gru": 3, "lstm": 4}  # weight blocks per layer in torch.nn.RNN, GRU, LSTM


def rnn_stack(cell, input_size, hidden_size, n_layers, directions=1):
    """Parameters of torch.nn.RNN/GRU/LSTM: per layer and direction W_ih, W_hh, b_ih, b_hh for each gate."""
    gates, total = RNN_GATES[cell], 0
    for layer in range(n_layers):
        layer_input = input_size if layer == 0 else hidden_size * directions
        total += directions * gates * hidden_size * (layer_input + hidden_size + 2)
    return total


def _rnn_tally(config):
    """An RNN encoder-decoder counted on the meta device (nothing is allocated): its sizes are bounded by RNNConfig,
    and its attention variants (Bahdanau, Luong dot/general/concat, input feeding) make a closed form long."""
    with torch.device("meta"):
        model = RNNSeq2Seq(config)
    tally = Tally()
    for name, module in model.named_children():
        tally.add(f"{name} (embed_dim={config.embed_dim}, hidden_size={config.hidden_size}, "
                  f"n_layers={config.n_layers})", sum(p.numel() for p in module.parameters()))
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
        too_big = (_("this model would have {n} parameters and {buffers} buffer values; the limit here is {limit} in "
                     "all. Most are in the {largest}: make those smaller") if buffers else
                   _("this model would have {n} parameters; the limit here is {limit} in all. Most are in the "
                     "{largest}: make those smaller"))
        raise ValueError(too_big.format(n=f"{n:,}", buffers=f"{buffers:,}", limit=f"{limit:,}",
                                        largest=counted.largest()))
    return n
