"""The size of a model is counted from its config alone, and that count is what a real model holds.

The reference is the model itself: sum(p.numel()) over its parameters (a tied tensor once) and over its buffers.
"""
import pytest
import torch
from fuzzing import fuzz
from hypothesis import given
from hypothesis import strategies as st

from attnviz.data.tokenizers import CharTokenizer
from attnviz.models.architectures import (ARCHITECTURES, MAX_PARAMETERS, build_model, check_size, model_config,
                                          parameter_count, size_keys, tally)
from attnviz.checks import SettingError
from attnviz.models.config import RNNConfig, TransformerConfig


def held_by(model):
    """(parameters, buffer values) of a real model, each shared tensor once."""
    return sum(p.numel() for p in model.parameters()), sum(b.numel() for b in model.buffers())


@st.composite
def transformer_configs(draw):
    n_heads = draw(st.integers(1, 3))
    encoder_only = draw(st.booleans())
    n_encoder = draw(st.integers(1, 2)) if encoder_only else draw(st.integers(0, 2))
    return TransformerConfig(
        src_vocab_size=draw(st.integers(1, 12)), tgt_vocab_size=draw(st.integers(1, 12)),
        d_model=n_heads * draw(st.integers(1, 4)), n_heads=n_heads, n_encoder_layers=n_encoder,
        n_decoder_layers=0 if encoder_only else draw(st.integers(1, 2)), d_ff=draw(st.integers(0, 9)),
        norm_first=draw(st.booleans()), positional=draw(st.sampled_from(["sinusoidal", "learned", "none"])),
        max_len=draw(st.integers(1, 20)), tie_embeddings=draw(st.booleans()), n_token_types=draw(st.integers(0, 3)),
        embedding_norm=draw(st.booleans()), encoder_only=encoder_only)


@st.composite
def rnn_configs(draw):
    bidirectional = draw(st.booleans())
    return RNNConfig(
        src_vocab_size=draw(st.integers(1, 12)), tgt_vocab_size=draw(st.integers(1, 12)),
        cell=draw(st.sampled_from(["rnn", "gru", "lstm"])), embed_dim=draw(st.integers(1, 6)),
        hidden_size=2 * draw(st.integers(1, 5)) if bidirectional else draw(st.integers(1, 10)),
        n_layers=draw(st.integers(1, 3)),
        attention=draw(st.sampled_from(["none", "bahdanau", "luong-dot", "luong-general", "luong-concat"])),
        bidirectional=bidirectional, max_len=draw(st.integers(1, 20)))


@fuzz(60)
@given(config=transformer_configs() | rnn_configs())
def test_the_count_is_what_a_real_model_holds(config):
    counted = tally(config)
    parameters, buffers = held_by(build_model(config))
    assert (sum(counted.parameters.values()), sum(counted.buffers.values())) == (parameters, buffers)
    assert parameter_count(config) == parameters and counted.total() == parameters + buffers


@pytest.mark.parametrize("architecture", list(ARCHITECTURES))
def test_every_architecture_at_its_default_size(architecture):
    config = model_config(architecture, CharTokenizer("abcdefgh"))
    parameters, buffers = held_by(build_model(config))
    assert check_size(config) == parameters and tally(config).total() == parameters + buffers


@pytest.mark.parametrize("sizes, part", [
    ({"max_len": 1_000_000}, r"positional tables \(max_len=1000000"),  # 64 M sinusoidal values, no parameter
    ({"n_encoder_layers": 256}, r"encoder layers \(n_encoder_layers=256"),
    ({"d_model": 16384, "n_heads": 4}, r"d_model=16384"),
])
def test_too_big_names_the_part_and_its_fields(sizes, part):
    config = model_config("transformer", CharTokenizer("abc"), **sizes)
    with pytest.raises(ValueError, match=f"limit here is {MAX_PARAMETERS:,}.*{part}"):
        check_size(config)


def test_the_largest_configs_are_counted_without_building_anything():
    """256 layers of width 65,536 would be about 10^12 numbers: counted, refused, nothing allocated."""
    config = TransformerConfig(1_000_000, 1_000_000, d_model=65_536, n_heads=256, n_encoder_layers=256,
                               n_decoder_layers=256, d_ff=65_536, max_len=1_000_000)
    assert tally(config).total() > 10**12
    with torch.device("meta"), pytest.raises(ValueError, match="limit here"):
        check_size(config)


@pytest.mark.parametrize("architecture, key, message", [
    ("transformer", "bogus", "bogus is not a setting of the transformer architecture"),
    ("transformer", "src_vocab_size", "src_vocab_size comes from the tokenizer"),
    ("lstm", "pad_id", "pad_id comes from the tokenizer"),
    ("lm", "n_encoder_layers", "n_encoder_layers is set by the architecture 'lm'"),
    ("lstm+bahdanau", "attention", "attention is set by the architecture"),
    ("lstm", "d_model", "d_model is not a setting of the lstm architecture"),
])
def test_a_size_that_is_not_the_users_to_set_is_named(architecture, key, message):
    with pytest.raises(ValueError, match=message):
        model_config(architecture, CharTokenizer("abc"), **{key: 5})


def test_size_keys_are_what_model_config_accepts():
    tokenizer = CharTokenizer("abc")
    for architecture in ARCHITECTURES:
        config = model_config(architecture, tokenizer)
        assert model_config(architecture, tokenizer, **{k: getattr(config, k) for k in size_keys(architecture)}) == config


def test_an_encoder_decoder_without_encoder_layers_is_refused_by_name():
    with pytest.raises(SettingError, match="n_encoder_layers=0 is not possible") as refused:
        model_config("transformer", CharTokenizer("abc"), n_encoder_layers=0)
    assert refused.value.field == "n_encoder_layers"
    assert model_config("lm", CharTokenizer("abc")).is_language_model  # the decoder-only one is "lm"
