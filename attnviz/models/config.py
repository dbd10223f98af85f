"""Frozen, self-validating model configurations.

A checkpoint stores `asdict(config)` and rebuilds it with `Config(**d)`: unknown keys are refused,
so a typo or a checkpoint from another version fails loudly instead of training something else. A refusal says
what to change in the session's language (attnviz.i18n); field names stay as the code spells them.
"""
from dataclasses import MISSING, dataclass, fields

from attnviz.checks import check_bool, check_choice, check_number, check_whole, is_whole, reject
from attnviz.i18n import _

POSITIONAL_KINDS = ("sinusoidal", "learned", "none")
ACTIVATIONS = ("relu", "gelu")
# Upper bounds far above anything this app trains (MiniLM: vocabulary 30,522, width 384, 512 positions), so that
# a config with absurd values cannot even be made; the size a model may reach is checked by
# attnviz.models.architectures.check_size, which counts its parameters and buffers.
MAX_VOCAB = 1_000_000
MAX_WIDTH = 65_536  # d_model, d_ff, embed_dim, hidden_size
MAX_HEADS = 256
MAX_LAYERS = 256
MAX_POSITIONS = 1_000_000  # max_len
MAX_TOKEN_TYPES = 1024


def _check_pad_id(config):
    if not is_whole(config.pad_id) or not 0 <= config.pad_id < min(config.src_vocab_size, config.tgt_vocab_size):
        reject("pad_id", config.pad_id, _("it must be a valid token id of both vocabularies"))


def _check_dropout(config):
    check_number(config, "dropout", 0.0, 1.0, _("use a probability in [0, 1)"), high_open=True)


class ConfigBase:
    """Shared constructor from a dict that names any unknown key."""

    @classmethod
    def from_dict(cls, d):
        if not isinstance(d, dict):
            raise ValueError(_("a {config} is read from a dict of settings, not a {kind}").format(
                config=cls.__name__, kind=type(d).__name__))
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known, key=str)
        if unknown:
            raise ValueError(_("unknown {config} keys {unknown}; known keys are {known}").format(
                config=cls.__name__, unknown=unknown, known=sorted(known)))
        missing = [f.name for f in fields(cls) if f.default is MISSING and f.name not in d]
        if missing:
            raise ValueError(_("a {config} needs {missing}").format(config=cls.__name__, missing=", ".join(missing)))
        return cls(**d)


@dataclass(frozen=True)
class TransformerConfig(ConfigBase):
    """A Transformer: encoder-decoder, a decoder-only language model when n_encoder_layers == 0,
    or an encoder without decoder (BERT-like) when encoder_only."""

    src_vocab_size: int
    tgt_vocab_size: int
    d_model: int = 64
    n_heads: int = 4
    n_encoder_layers: int = 1
    n_decoder_layers: int = 1
    d_ff: int = 256  # 0: no feed-forward sub-layer, an attention-only Transformer (Elhage et al., 2021)
    dropout: float = 0.0
    norm_first: bool = True  # pre-LayerNorm (True) or post-LayerNorm as in Vaswani et al. (False)
    positional: str = "sinusoidal"
    max_len: int = 128
    activation: str = "relu"
    tie_embeddings: bool = False  # decoder input embedding shared with the output projection
    scale_embeddings: bool = True  # multiply token embeddings by sqrt(d_model), as Vaswani et al.
    pad_id: int = 0
    layer_norm_eps: float = 1e-5
    n_token_types: int = 0  # BERT's segment (sentence A/B) embeddings; 0 = none
    embedding_norm: bool = False  # LayerNorm right after the embeddings, as BERT
    encoder_only: bool = False  # a BERT-like encoder without decoder (needs n_decoder_layers=0)

    def __post_init__(self):
        check_whole(self, ["src_vocab_size", "tgt_vocab_size"], maximum=MAX_VOCAB)
        check_whole(self, ["d_model"], maximum=MAX_WIDTH)
        check_whole(self, ["d_ff"], minimum=0, maximum=MAX_WIDTH)  # 0: attention only
        check_whole(self, ["n_heads"], maximum=MAX_HEADS)
        check_whole(self, ["max_len"], maximum=MAX_POSITIONS)
        check_whole(self, ["n_encoder_layers", "n_decoder_layers"], minimum=0, maximum=MAX_LAYERS)
        check_whole(self, ["n_token_types"], minimum=0, maximum=MAX_TOKEN_TYPES)
        if self.encoder_only:
            if self.n_encoder_layers == 0:
                reject("n_encoder_layers", 0, _("an encoder-only model needs 1 or more encoder layers"))
            if self.n_decoder_layers:
                reject("n_decoder_layers", self.n_decoder_layers, _("an encoder-only model has no decoder; use 0"))
        elif self.n_decoder_layers == 0:
            reject("n_decoder_layers", 0, _("every model needs a decoder; use 1 or more (n_encoder_layers=0 makes a "
                                            "decoder-only language model, encoder_only=True an encoder without "
                                            "decoder)"))
        check_number(self, "layer_norm_eps", 0, 1, _("use a small positive number such as 1e-5"), low_open=True)
        if self.d_model % self.n_heads:
            example = self.n_heads * max(1, self.d_model // self.n_heads)
            reject("d_model", self.d_model, _("it must be divisible by n_heads={n_heads}, e.g. d_model={example}")
                   .format(n_heads=self.n_heads, example=example))
        _check_dropout(self)
        check_bool(self, ["norm_first", "tie_embeddings", "scale_embeddings", "embedding_norm", "encoder_only"])
        check_choice(self, "positional", POSITIONAL_KINDS)
        check_choice(self, "activation", ACTIVATIONS)
        _check_pad_id(self)

    @property
    def is_language_model(self):
        return self.n_encoder_layers == 0


RNN_CELLS = ("rnn", "gru", "lstm")
RNN_ATTENTION = ("none", "bahdanau", "luong-dot", "luong-general", "luong-concat")


@dataclass(frozen=True)
class RNNConfig(ConfigBase):
    """A recurrent encoder-decoder (attnviz.models.rnn.RNNSeq2Seq): plain, Bahdanau or Luong attention.

    attention: "none" (Sutskever et al. 2014: the encoder's final state only initialises the decoder),
    "bahdanau" (Bahdanau et al. 2015: additive score on the previous decoder state, the context feeds the
    recurrence), or "luong-dot" / "luong-general" / "luong-concat" (Luong et al. 2015, global attention on the
    decoder state after the recurrence, with that score). input_feeding (Luong only) joins the attentional state
    h~_{i-1} to the next step's input; None means the paper's choice: on for Luong, off (meaningless) otherwise.
    """

    src_vocab_size: int
    tgt_vocab_size: int
    cell: str = "lstm"
    embed_dim: int = 64
    hidden_size: int = 128  # decoder state size; a bidirectional encoder uses hidden_size // 2 per direction
    n_layers: int = 1
    attention: str = "bahdanau"
    input_feeding: bool | None = None  # Luong only; None: True for Luong, False otherwise
    dropout: float = 0.0
    bidirectional: bool = False  # encoder only; the decoder always reads left to right
    max_len: int = 128  # bound on decoded length
    pad_id: int = 0

    def __post_init__(self):
        check_whole(self, ["src_vocab_size", "tgt_vocab_size"], maximum=MAX_VOCAB)
        check_whole(self, ["embed_dim", "hidden_size"], maximum=MAX_WIDTH)
        check_whole(self, ["n_layers"], maximum=MAX_LAYERS)
        check_whole(self, ["max_len"], maximum=MAX_POSITIONS)
        check_choice(self, "cell", RNN_CELLS)
        check_choice(self, "attention", RNN_ATTENTION)
        if self.input_feeding is None:  # resolved here, so a checkpoint stores what the model does
            object.__setattr__(self, "input_feeding", self.is_luong)
        check_bool(self, ["input_feeding", "bidirectional"])
        if self.input_feeding and not self.is_luong:
            reject("input_feeding", True, _("only Luong attention has an attentional state to feed back (Bahdanau's "
                                            "context is an input of the recurrence anyway); use False or a luong-* "
                                            "attention"))
        _check_dropout(self)
        if self.bidirectional and self.hidden_size % 2:
            reject("hidden_size", self.hidden_size, _("a bidirectional encoder splits it between two directions; use "
                                                      "an even number such as {even}").format(
                even=self.hidden_size + 1))
        _check_pad_id(self)

    @property
    def is_luong(self):
        return self.attention.startswith("luong-")
