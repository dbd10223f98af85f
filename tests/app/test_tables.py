"""The checkpoint table: its model-size label says which RNN attention a model has, and its headers and words are
in the session's language."""
from dataclasses import asdict
from pathlib import Path

import pytest
from page_helpers import latin_words

from attnviz.app.tables import MODEL_COLUMNS, model_size, models_table
from attnviz.models.config import RNNConfig
from attnviz.training.checkpoint_list import CheckpointInfo


@pytest.mark.parametrize("settings, label", [
    ({"attention": "none"}, "LSTM 64, attention: none (Sutskever)"),
    ({"attention": "bahdanau"}, "LSTM 64, attention: Bahdanau"),
    ({"attention": "luong-dot"}, "LSTM 64, attention: luong-dot, input feeding"),
    ({"attention": "luong-concat", "input_feeding": False, "cell": "gru"}, "GRU 64, attention: luong-concat"),
])
def test_rnn_size_names_the_attention(settings, label):
    assert model_size(asdict(RNNConfig(10, 10, hidden_size=64, **settings))) == label


def checkpoint_infos():
    """A shipped Transformer, one of the viewer's LSTMs and someone else's language model."""
    transformer = {"d_model": 8, "n_heads": 2, "n_encoder_layers": 1, "n_decoder_layers": 1}
    lm = {"d_model": 16, "n_heads": 4, "n_encoder_layers": 0, "n_decoder_layers": 2}
    return [CheckpointInfo("reverse", Path("reverse"), True, {"architecture": "transformer", "config": transformer,
                                                              "task": {"name": "reverse"},
                                                              "metrics": {"exact_match": 0.5}}),
            CheckpointInfo("mine", Path("mine"), False, {"owner": "me", "architecture": "lstm",
                                                         "config": asdict(RNNConfig(10, 10, attention="none")),
                                                         "metrics": {"token_accuracy": 0.75}}),
            CheckpointInfo("theirs", Path("theirs"), False, {"owner": "other", "trained_by": "Ada", "config": lm,
                                                             "metrics": {"perplexity": 3.5}})]


def test_the_models_table_is_in_the_sessions_language(chinese):
    table = models_table(checkpoint_infos(), "me")
    assert list(table.columns) == [chinese.gettext(column) for column in MODEL_COLUMNS]
    assert table[chinese.gettext("from")].tolist() == [
        chinese.gettext("shipped"), chinese.gettext("yours"), chinese.gettext("by {who}").format(who="Ada")]
    assert table[chinese.gettext("model")].tolist() == ["reverse", "mine", "theirs"]  # names stay as they are
    described = table[chinese.gettext("size")].tolist() + table[chinese.gettext("test result")].tolist()
    assert latin_words(described) == {"d_model", "LSTM", "Sutskever"}  # no English word, only names
    assert "50.0%" in described[3] and "3.50" in described[5]


def test_the_models_table_in_english():
    table = models_table(checkpoint_infos(), "me")
    assert list(table.columns) == MODEL_COLUMNS
    assert table["size"].tolist() == ["d_model 8, 2 heads, 1 encoder + 1 decoder layers",
                                      "LSTM 128, attention: none (Sutskever)",
                                      "d_model 16, 4 heads, 2 decoder layers (LM)"]
    assert table["test result"].tolist() == ["exact match 50.0%", "token accuracy 75.0%", "perplexity 3.50"]
