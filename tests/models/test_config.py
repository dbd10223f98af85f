"""TransformerConfig refuses every impossible value with a ValueError that names the field."""
from dataclasses import FrozenInstanceError, asdict

import pytest

from attnviz import TransformerConfig

BASE = dict(src_vocab_size=20, tgt_vocab_size=30)


@pytest.mark.parametrize("field,value", [
    ("d_model", 30),  # not divisible by n_heads=4
    ("n_heads", 5),  # does not divide d_model=64
    ("n_decoder_layers", 0),
    *[(name, -1) for name in ["src_vocab_size", "tgt_vocab_size", "d_model", "n_heads", "d_ff", "max_len",
                              "n_encoder_layers", "n_decoder_layers"]],
    *[(name, 0) for name in ["src_vocab_size", "tgt_vocab_size", "d_model", "n_heads", "max_len"]],  # d_ff 0 is allowed
    *[(name, 2.5) for name in ["d_model", "d_ff", "n_encoder_layers", "n_decoder_layers"]],
    ("positional", "rotary"),
    ("activation", "tanh"),
    ("dropout", -0.1),
    ("dropout", 1.0),
    ("dropout", float("nan")),
    ("dropout", "0.1"),
    ("pad_id", -1),
    ("pad_id", 20),  # outside the smaller (source) vocabulary
    ("norm_first", "no"),
    ("tie_embeddings", 1),
    ("scale_embeddings", None),
])
def test_impossible_value_names_its_field(field, value):
    with pytest.raises(ValueError, match=field):
        TransformerConfig(**{**BASE, field: value})


def test_d_model_message_suggests_a_fix():
    with pytest.raises(ValueError, match="divisible by n_heads=4"):
        TransformerConfig(**BASE, d_model=30)


def test_language_model_has_no_encoder_layers():
    assert TransformerConfig(**BASE, n_encoder_layers=0).is_language_model
    assert not TransformerConfig(**BASE).is_language_model


def test_from_dict_rejects_unknown_keys_by_name():
    with pytest.raises(ValueError, match="d_modle"):
        TransformerConfig.from_dict({**BASE, "d_modle": 64})


@pytest.mark.parametrize("overrides", [{}, dict(n_encoder_layers=0, positional="learned", activation="gelu",
                                                 norm_first=False, dropout=0.1, tie_embeddings=True)])
def test_asdict_round_trip(overrides):
    config = TransformerConfig(**BASE, **overrides)
    assert TransformerConfig(**asdict(config)) == config
    assert TransformerConfig.from_dict(asdict(config)) == config


def test_config_is_frozen():
    with pytest.raises(FrozenInstanceError):
        TransformerConfig(**BASE).d_model = 8
