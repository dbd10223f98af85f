"""Configs refuse every impossible value with a ValueError that names the field."""
import pickle
from dataclasses import FrozenInstanceError, asdict, fields

import pytest
from fuzzing import fuzz
from hypothesis import given
from hypothesis import strategies as st

from attnviz import RNNConfig, TransformerConfig
from attnviz.checks import SettingError
from attnviz.training.config import TrainConfig

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


@pytest.mark.parametrize("config_class, field, value", [
    (TransformerConfig, "max_len", 100_000_000),  # a sinusoidal table of 25.6 GB
    (TransformerConfig, "n_encoder_layers", 1_000_000_000),
    (TransformerConfig, "src_vocab_size", 10**7),
    (TransformerConfig, "d_model", 2**17),
    (TransformerConfig, "d_ff", 2**63),
    (TransformerConfig, "n_token_types", 10**6),
    (TransformerConfig, "layer_norm_eps", float("inf")),
    (TransformerConfig, "pad_id", "0"),
    (RNNConfig, "hidden_size", 1_000_000_000),
    (RNNConfig, "embed_dim", 9223372036854775808),
    (RNNConfig, "n_layers", 10**4),
    (RNNConfig, "max_len", 10**9),
    (RNNConfig, "tgt_vocab_size", "64"),
])
def test_absurd_sizes_cannot_make_a_config(config_class, field, value):
    with pytest.raises(ValueError, match=f"{field}=.* at most|{field}="):
        config_class(**{**BASE, field: value})


def test_bounds_are_said_in_the_message():
    with pytest.raises(ValueError, match="max_len=100000000 is not possible: .* at most 1,000,000"):
        TransformerConfig(**BASE, max_len=100_000_000)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                    max_leaves=6)


def settings_of(config_class):
    """A dict of a config's keys (and a few others) to random JSON values, sometimes plausible numbers."""
    keys = [f.name for f in fields(config_class)]
    value = JSON | st.integers(-2, 300) | st.sampled_from(["relu", "gelu", "lstm", "gru", "bahdanau", "none", "cpu"])
    return st.dictionaries(st.sampled_from(keys) | st.text(max_size=6), value, max_size=len(keys))


@fuzz(150)
@given(config_class=st.sampled_from([TransformerConfig, RNNConfig, TrainConfig]), data=st.data())
def test_configs_from_random_json_are_made_or_refused_with_a_value_error(config_class, data):
    d = data.draw(settings_of(config_class) | JSON)
    try:
        config = config_class.from_dict(d)
    except ValueError as error:
        assert str(error)
    else:
        assert config_class.from_dict(asdict(config)) == config


@pytest.mark.parametrize("make, field", [
    (lambda: TrainConfig(label_smoothing="64"), "label_smoothing"),
    (lambda: TrainConfig(lr="3e-3"), "lr"),
    (lambda: TransformerConfig(**BASE, pad_id="64"), "pad_id"),
    (lambda: RNNConfig(**BASE, dropout="0.1"), "dropout"),
])
def test_a_string_where_a_number_belongs_is_a_value_error(make, field):
    with pytest.raises(ValueError, match=f"{field}='"):
        make()


@pytest.mark.parametrize("make, field", [
    (lambda: TrainConfig(steps=0), "steps"), (lambda: TrainConfig(lr=0.0), "lr"),
    (lambda: TransformerConfig(**BASE, n_decoder_layers=0), "n_decoder_layers"),
    (lambda: RNNConfig(**BASE, n_layers=0), "n_layers"),
])
def test_a_refusal_carries_its_field_also_across_processes(make, field):
    with pytest.raises(SettingError) as refused:
        make()
    copy = pickle.loads(pickle.dumps(refused.value))  # as a worker process sends it back
    assert (refused.value.field, copy.field, str(copy)) == (field, field, str(refused.value))
    assert str(copy).startswith(f"{field}=")


def test_a_refusal_comes_in_the_sessions_language_with_the_field_as_the_code_spells_it(in_chinese):
    with pytest.raises(SettingError, match=r"^d_model=63 is not possible: it must be divisible by n_heads=4, e\.g\. "
                                           r"d_model=60$"):
        TransformerConfig(**BASE, d_model=63)
    with in_chinese() as zh, pytest.raises(SettingError) as refused:
        TransformerConfig(**BASE, d_model=63)
    fix = zh("it must be divisible by n_heads={n_heads}, e.g. d_model={example}", n_heads=4, example=60)
    assert str(refused.value) == zh("{field}={value} is not possible: {fix}", field="d_model", value="63", fix=fix)
    assert refused.value.field == "d_model" and str(refused.value).startswith("d_model=63 ")
    with in_chinese() as zh, pytest.raises(SettingError) as refused:
        TrainConfig(batch_size=5000)
    fix = zh("use a whole number of {minimum} or more and at most {maximum}", minimum=1, maximum="4,096")
    assert str(refused.value) == zh("{field}={value} is not possible: {fix}", field="batch_size", value="5000", fix=fix)
