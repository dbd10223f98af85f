"""The model-size label of the checkpoint table says which RNN attention a model has."""
from dataclasses import asdict

import pytest

from attnviz.app.tables import model_size
from attnviz.models.config import RNNConfig


@pytest.mark.parametrize("settings, label", [
    ({"attention": "none"}, "LSTM 64, attention: none (Sutskever)"),
    ({"attention": "bahdanau"}, "LSTM 64, attention: Bahdanau"),
    ({"attention": "luong-dot"}, "LSTM 64, attention: luong-dot, input feeding"),
    ({"attention": "luong-concat", "input_feeding": False, "cell": "gru"}, "GRU 64, attention: luong-concat"),
])
def test_rnn_size_names_the_attention(settings, label):
    assert model_size(asdict(RNNConfig(10, 10, hidden_size=64, **settings))) == label
