"""The "Inside the recurrence" section of the RNN vs attention page: the gradient by distance of every model against
torch.autograd.functional.jacobian, and the LSTM's cell state and output gate against nn.LSTM run one step at a
time."""
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch
from page_helpers import array, charts, z_of
import test_rnn_page
from test_rnn_page import LABELS, open_page, tiny
from torch.autograd.functional import jacobian

from attnviz import build_model
from attnviz.interpret import contenders
from attnviz.interpret.comparison import reference
from attnviz.interpret.contenders import checkpoint_name
from attnviz.training import checkpoint


shipped_dir, dirs = test_rnn_page.shipped_dir, test_rnn_page.dirs  # the page test's tiny shipped models


def load(folder, architecture):
    return checkpoint.load_checkpoint(folder / checkpoint_name("reverse", architecture))


def jacobian_norms(model, src, tgt_in, token):
    """||d logit(token) at the last step / d embed(src_j)|| per source position, from the full Jacobian."""
    embedding = getattr(model.encoder.embed, "tokens", model.encoder.embed)

    def logit(x):
        handle = embedding.register_forward_hook(lambda module, args, output: x)
        try:
            return model(src, tgt_in)[0, -1, token]
        finally:
            handle.remove()

    return jacobian(logit, embedding(src).detach())[0].norm(dim=-1).numpy()  # (S,)


def test_gradient_by_distance_of_every_model(dirs):
    shipped, _ = dirs
    at = open_page()
    text = at.text_input(key="rnn_input_reverse").value
    target = reference(load(shipped, "transformer").task(), text)
    reach = charts(at)["rnn_reach"]
    assert [trace["name"] for trace in reach["data"]] == LABELS
    assert reach["layout"]["yaxis"]["type"] == "log"
    for trace, architecture in zip(reach["data"], contenders.LABELS):
        picked = load(shipped, architecture)
        tokenizer = picked.task().tokenizer
        src = torch.tensor([tokenizer.encode(text) + [tokenizer.eos_id]])  # (1, S)
        tgt_in = torch.tensor([[tokenizer.bos_id] + tokenizer.encode(target)[:-1]])  # (1, T): up to the last token
        expected = jacobian_norms(picked.model, src, tgt_in, tokenizer.encode(target)[-1])
        S, T = src.shape[1], tgt_in.shape[1]
        assert array(trace["x"]).tolist() == [S + T - 1 - j for j in range(S)]
        assert array(trace["y"]) == pytest.approx(expected, rel=1e-4), architecture


def nn_lstm_steps(model, ids):
    """(c_t, h_t) of the encoder LSTM at every step, from nn.LSTM fed one token at a time: (T, H) each."""
    x, state, cells, hiddens = model.encoder.embed(ids), None, [], []  # x: (1, T, E)
    with torch.no_grad():
        for t in range(ids.shape[1]):
            out, state = model.encoder.rnn(x[:, t:t + 1], state)
            hiddens.append(state[0][0, 0].numpy())
            cells.append(state[1][0, 0].numpy())
    return np.array(cells), np.array(hiddens)


@pytest.mark.parametrize("architecture", ["lstm+bahdanau", "lstm"])
def test_lstm_gates_of_the_chosen_model(dirs, architecture):
    shipped, _ = dirs
    at = open_page()
    at.radio(key="rnn_gates_model").set_value(contenders.LABELS[architecture]).run()
    assert not at.exception
    picked = load(shipped, architecture)
    tokenizer = picked.task().tokenizer
    text = at.text_input(key="rnn_input_reverse").value
    ids = torch.tensor([tokenizer.encode(text) + [tokenizer.eos_id]])  # (1, T)
    cells, hiddens = nn_lstm_steps(picked.model, ids)
    figures = charts(at)
    assert {"rnn_gate_input", "rnn_gate_forget", "rnn_gate_output", "rnn_gate_cell"} <= set(figures)
    assert np.abs(z_of(figures["rnn_gate_cell"]) - cells.T).max() < 1e-6  # units down, time steps across
    assert np.abs(z_of(figures["rnn_gate_output"]) * np.tanh(cells.T) - hiddens.T).max() < 1e-6  # h = o tanh(c)
    assert figures["rnn_gate_cell"]["layout"]["xaxis"]["ticktext"] == \
        [label.replace("<", "&lt;").replace(">", "&gt;") for label in tokenizer.labels(ids[0])]


def test_a_shipped_plain_rnn_of_the_task_joins_the_gradients(dirs):
    shipped, _ = dirs
    task, model, config = tiny("reverse-long", "lstm")
    plain = build_model(replace(model.config, cell="rnn")).eval()  # a tanh RNN, same sizes
    checkpoint.save_checkpoint(shipped / checkpoint_name("reverse-long", "rnn"), plain, task.tokenizer,
                               {"task": task.spec()})
    try:
        at = open_page(rnn_task="reverse-long")
        text = at.text_input(key="rnn_input_reverse-long").value
        reach = charts(at)["rnn_reach"]
        assert [trace["name"] for trace in reach["data"]] == LABELS + ["Plain RNN, no attention"]
        tokenizer = task.tokenizer
        target = reference(task, text)
        src = torch.tensor([tokenizer.encode(text) + [tokenizer.eos_id]])  # (1, S)
        tgt_in = torch.tensor([[tokenizer.bos_id] + tokenizer.encode(target)[:-1]])  # (1, T)
        expected = jacobian_norms(plain, src, tgt_in, tokenizer.encode(target)[-1])
        assert array(reach["data"][-1]["y"]) == pytest.approx(expected, rel=1e-4)
        assert "plain tanh RNN" in " ".join(m.value for m in at.markdown)
    finally:
        shutil.rmtree(shipped / checkpoint_name("reverse-long", "rnn"))
