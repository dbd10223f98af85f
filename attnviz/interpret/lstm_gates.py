"""lstm_gates(model, src_ids, layer=0) -> {"input", "forget", "output", "candidate", "cell", "hidden": (T, hidden)
numpy arrays}: the encoder LSTM's gates at every time step of one source, computed from the module's own weights.
text_lstm_gates(model, tokenizer, text, layer=0) -> (that dict, the token labels); is_lstm(model) says if it applies.

The LSTM equations as torch.nn.LSTM writes them (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al.
2000), one time step t of one layer, x_t its input, h_{t-1} and c_{t-1} its state (zeros at t = 0):

    i_t = sigmoid(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)      input gate: how much of the candidate is written
    f_t = sigmoid(W_if x_t + b_if + W_hf h_{t-1} + b_hf)      forget gate: how much of the old cell is kept
    g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)         candidate: what could be written
    o_t = sigmoid(W_io x_t + b_io + W_ho h_{t-1} + b_ho)      output gate: how much of the cell is shown
    c_t = f_t * c_{t-1} + i_t * g_t                            cell state: the memory, changed by addition
    h_t = o_t * tanh(c_t)                                      hidden state: what the next layer and step read

nn.LSTM stacks the four blocks of rows in the order i, f, g, o in `weight_ih_l{k}`, `weight_hh_l{k}`, `bias_ih_l{k}`
and `bias_hh_l{k}`. Layer k > 0 reads the hidden states of layer k - 1 (both directions, concatenated, when the
encoder is bidirectional; the backward direction reads the sequence from its end). The gates returned are those of
the forward direction of `layer`.
"""
import torch

from attnviz.interpret.comparison import source_ids

GATES = ("input", "forget", "candidate", "output")  # nn.LSTM's order of the row blocks: i, f, g, o


def is_lstm(model):
    """True when the model's encoder is an nn.LSTM (the models `lstm_gates` takes apart)."""
    return isinstance(getattr(getattr(model, "encoder", None), "rnn", None), torch.nn.LSTM)


def encoder_lstm(model):
    """The model's encoder nn.LSTM, or a ValueError that says what the model has instead."""
    rnn = getattr(getattr(model, "encoder", None), "rnn", None)
    if not is_lstm(model):
        raise ValueError("lstm_gates needs a model with an LSTM encoder; this one has "
                         f"{type(rnn).__name__ if rnn is not None else 'no recurrent encoder'}")
    return rnn


def run_direction(lstm, x, layer, suffix=""):
    """One direction of one layer over x (T, in) -> {gate: (T, H)} plus "cell" and "hidden", step by step."""
    weight = lambda name: getattr(lstm, f"{name}_l{layer}{suffix}")
    w_ih, w_hh = weight("weight_ih"), weight("weight_hh")  # (4H, in), (4H, H)
    bias = weight("bias_ih") + weight("bias_hh") if lstm.bias else 0.0  # (4H,)
    H = lstm.hidden_size
    h, c = x.new_zeros(H), x.new_zeros(H)
    steps = {name: [] for name in (*GATES, "cell", "hidden")}
    from_inputs = x @ w_ih.T + bias  # (T, 4H): the input's part of every step at once
    for t in range(x.shape[0]):
        i, f, g, o = (from_inputs[t] + w_hh @ h).chunk(4)  # (H,) each
        i, f, g, o = i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()
        c = f * c + i * g
        h = o * c.tanh()
        for name, value in zip((*GATES, "cell", "hidden"), (i, f, g, o, c, h)):
            steps[name].append(value)
    return {name: torch.stack(values) for name, values in steps.items()}  # (T, H) each


@torch.no_grad()
def lstm_gates(model, src_ids, layer=0):
    """The gates, candidate, cell and hidden state of the encoder LSTM's `layer` at each step of one source
    ((S,) or (1, S) ids; trailing padding is dropped, as the model's packed encoder drops it), each (T, hidden)."""
    lstm = encoder_lstm(model)
    if lstm.proj_size:
        raise ValueError("lstm_gates does not handle an LSTM with proj_size")
    if not 0 <= layer < lstm.num_layers:
        raise ValueError(f"layer {layer} does not exist: the encoder LSTM has layers 0..{lstm.num_layers - 1}")
    ids = src_ids.reshape(-1)
    if src_ids.dim() > 2 or (src_ids.dim() == 2 and src_ids.shape[0] != 1):
        raise ValueError(f"lstm_gates takes one sequence, (S,) or (1, S); got shape {tuple(src_ids.shape)}")
    ids = ids[ids != model.config.pad_id].to(lstm.weight_ih_l0.device)  # (T,)
    x = model.encoder.embed(ids).float()  # (T, E)
    for k in range(layer + 1):
        forward = run_direction(lstm, x, k)
        if k == layer:
            return {name: values.cpu().numpy() for name, values in forward.items()}
        if lstm.bidirectional:  # the next layer reads both directions, the backward one realigned to time
            backward = run_direction(lstm, x.flip(0), k, "_reverse")["hidden"].flip(0)  # (T, H)
            x = torch.cat([forward["hidden"], backward], dim=-1)  # (T, 2H)
        else:
            x = forward["hidden"]  # (T, H)


def text_lstm_gates(model, tokenizer, text, layer=0):
    """`lstm_gates` of `text` read as the model's source (its tokens + EOS), with the label of each token."""
    src = torch.tensor(source_ids(tokenizer, text, model.config.max_len))  # (S,)
    return lstm_gates(model, src, layer), tokenizer.labels(src)
