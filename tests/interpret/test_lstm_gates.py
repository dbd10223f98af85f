"""lstm_gates against the LSTM equations written out in numpy (float64) with the module's own weights, and against
torch.nn.LSTM's own outputs: the hidden states of the top layer and the final (h, c) of every layer."""
import numpy as np
import pytest
import torch

from attnviz import build_model
from attnviz.interpret.lstm_gates import lstm_gates
from attnviz.models.config import RNNConfig

PAD = 0
SRC = torch.tensor([[3, 4, 5, 6, 7, 8, 9, 2]])  # (1, S)


def tiny(n_layers=1, bidirectional=False, cell="lstm"):
    torch.manual_seed(0)
    return build_model(RNNConfig(src_vocab_size=12, tgt_vocab_size=12, pad_id=PAD, cell=cell, attention="bahdanau",
                                 embed_dim=6, hidden_size=8, n_layers=n_layers, bidirectional=bidirectional)).eval()


def by_hand(lstm, x, layer):
    """The equations of torch.nn.LSTM's documentation, one step at a time, gate blocks in the order i, f, g, o."""
    w = lambda name: getattr(lstm, f"{name}_l{layer}").detach().double().numpy()
    H = lstm.hidden_size
    W_ih, W_hh, b = w("weight_ih"), w("weight_hh"), w("bias_ih") + w("bias_hh")
    (W_ii, W_if, W_ig, W_io), (W_hi, W_hf, W_hg, W_ho) = np.split(W_ih, 4), np.split(W_hh, 4)
    b_i, b_f, b_g, b_o = np.split(b, 4)
    sigmoid = lambda z: 1 / (1 + np.exp(-z))
    h, c, out = np.zeros(H), np.zeros(H), {k: [] for k in ("input", "forget", "candidate", "output", "cell", "hidden")}
    for x_t in x:
        i = sigmoid(W_ii @ x_t + W_hi @ h + b_i)
        f = sigmoid(W_if @ x_t + W_hf @ h + b_f)
        g = np.tanh(W_ig @ x_t + W_hg @ h + b_g)
        o = sigmoid(W_io @ x_t + W_ho @ h + b_o)
        c = f * c + i * g
        h = o * np.tanh(c)
        for key, value in zip(out, (i, f, g, o, c, h)):
            out[key].append(value)
    return {key: np.array(values) for key, values in out.items()}


def test_gates_follow_the_equations_with_the_modules_weights():
    model = tiny()
    gates = lstm_gates(model, SRC)
    x = model.encoder.embed(SRC[0]).detach().double().numpy()  # (S, E)
    expected = by_hand(model.encoder.rnn, x, 0)
    assert set(gates) == set(expected)
    for name, values in expected.items():
        assert gates[name].shape == (8, 8)
        assert np.abs(gates[name] - values).max() < 1e-6, name
    assert (gates["input"] > 0).all() and (gates["input"] < 1).all()


@pytest.mark.parametrize("bidirectional", [False, True])
def test_every_layer_matches_nn_lstm(bidirectional):
    model = tiny(n_layers=2, bidirectional=bidirectional)
    lstm, H = model.encoder.rnn, model.encoder.rnn.hidden_size
    with torch.no_grad():
        output, (h_n, c_n) = lstm(model.encoder.embed(SRC))  # (1, S, dirs * H), (layers * dirs, 1, H)
    directions = 2 if bidirectional else 1
    for layer in range(2):
        gates = lstm_gates(model, SRC, layer=layer)
        forward = layer * directions  # nn.LSTM's index of this layer's forward direction
        assert np.abs(gates["hidden"][-1] - h_n[forward, 0].numpy()).max() < 1e-6
        assert np.abs(gates["cell"][-1] - c_n[forward, 0].numpy()).max() < 1e-6
    assert np.abs(gates["hidden"] - output[0, :, :H].numpy()).max() < 1e-6  # the top layer at every step


def test_trailing_padding_is_dropped_as_the_packed_encoder_drops_it():
    model = tiny()
    padded = torch.cat([SRC, torch.full((1, 3), PAD)], dim=1)
    for name, values in lstm_gates(model, SRC).items():
        assert np.array_equal(lstm_gates(model, padded)[name], values)


def test_refuses_what_it_cannot_take_apart():
    with pytest.raises(ValueError, match="LSTM encoder"):
        lstm_gates(tiny(cell="gru"), SRC)
    with pytest.raises(ValueError, match="layer 1 does not exist"):
        lstm_gates(tiny(), SRC, layer=1)
    with pytest.raises(ValueError, match="one sequence"):
        lstm_gates(tiny(), SRC.repeat(2, 1))
