"""The "RNN vs attention" page through AppTest: shipped models side by side, and training all three here."""
import base64
import json

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from attnviz import build_model, checkpoint, compare, presets
from attnviz.presets import model_config
from attnviz.tasks import make_task
from attnviz.train import TrainConfig

APP = "../../app.py"
PAGE = "pages/rnn_vs_attention.py"
TASK = {"min_len": 2, "max_len": 4, "alphabet": "abc", "n_train": 40, "n_val": 8, "n_test": 8}
SIZES = {"transformer": {"d_model": 8, "n_heads": 2, "d_ff": 16}, "lstm+attention": {"embed_dim": 8, "hidden_size": 8},
         "lstm": {"embed_dim": 8, "hidden_size": 8}}


def tiny(architecture, seed=0):
    task = make_task("reverse", seed=seed, **TASK)
    torch.manual_seed(seed)
    return task, build_model(model_config(architecture, task.tokenizer, **SIZES[architecture]))


@pytest.fixture
def model_dirs(tmp_path, monkeypatch):
    shipped, user = tmp_path / "shipped", tmp_path / "user"
    shipped.mkdir(), user.mkdir()
    monkeypatch.setattr(checkpoint, "SHIPPED_DIR", shipped)
    monkeypatch.setattr(checkpoint, "USER_DIR", user)
    return user


@pytest.fixture
def three_checkpoints(model_dirs):
    """reverse-transformer, reverse-lstm-attention, reverse-lstm: untrained, with made-up training records."""
    for i, architecture in enumerate(compare.LABELS):
        task, model = tiny(architecture)
        history = {"step": [1, 2, 3], "loss": [3.0, 2.5 - i / 10, 2.0], "time": [0.0, 0.1, 0.2 * (i + 1)]}
        evals = {"step": [3], "time": [0.2], "exact_match": [0.1 * i], "token_accuracy": [0.5]}
        checkpoint.save_checkpoint(model_dirs / f"reverse-{architecture.replace('+', '-')}", model, task.tokenizer,
                                   {"task": task.spec(), "history": history, "evals": evals})


def open_page():
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    return at.switch_page(PAGE).run()


def chart(at, key):
    return json.loads(next(c for c in at.get("plotly_chart") if c.key == key).proto.spec)


def array(value):
    """A plotly JSON array (a list, or the typed {"dtype", "bdata", "shape"} form) as a float array."""
    if not isinstance(value, dict):
        return np.array(value, dtype=float)
    shape = [int(n) for n in str(value.get("shape", -1)).split(",")]
    return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]).reshape(shape).astype(float)


def test_shipped_models_side_by_side(three_checkpoints):
    at = open_page()
    assert not at.exception
    summary = at.dataframe[0].value
    assert list(summary["model"]) == ["Transformer", "LSTM + attention", "LSTM"]
    assert list(summary["steps"]) == [3, 3, 3]
    assert list(summary["val exact match"]) == pytest.approx([0.0, 0.1, 0.2])
    loss = chart(at, "rnn_loss")
    assert [trace["name"] for trace in loss["data"]] == ["Transformer", "LSTM + attention", "LSTM"]
    assert array(loss["data"][1]["y"]) == pytest.approx([3.0, 2.4, 2.0])
    at.radio(key="rnn_curve_x").set_value("time").run()
    assert array(chart(at, "rnn_loss")["data"][2]["x"]) == pytest.approx([0.0, 0.1, 0.6])

    source = at.text_input(key="rnn_input_reverse").value
    outputs = [m.value for m in at.markdown if m.value.startswith("**") and "<code>" in m.value]
    assert [o.split("**")[1] for o in outputs] == ["Transformer", "LSTM + attention", "LSTM"]
    assert any(f"`{source[::-1]}`" in m.value for m in at.markdown)  # the right answer
    bahdanau = array(chart(at, "rnn_align_lstm")["data"][0]["z"])
    head = array(chart(at, "rnn_align_transformer")["data"][0]["z"])
    # one row per output token + EOS, one column per source token + EOS; weights over the source sum to 1
    assert bahdanau.shape == head.shape == (len(source) + 1, len(source) + 1)
    assert bahdanau.sum(1) == pytest.approx(1, abs=1e-5) and head.sum(1) == pytest.approx(1, abs=1e-5)
    at.selectbox(key="rnn_head").set_value(1).run()
    assert not at.exception
    at.text_input(key="rnn_input_reverse").set_value("abz").run()  # "z" is not in this task's alphabet
    assert not at.exception and "'z'" in at.error[0].value
    assert {"rnn_by_length", "rnn_cost_forward_ms"} <= {c.key for c in at.get("plotly_chart")}  # the rest goes on
    at.text_input(key="rnn_input_reverse").set_value(source).run()

    by_length = chart(at, "rnn_by_length")
    assert [t["name"] for t in by_length["data"]] == ["Transformer", "LSTM + attention", "LSTM"]
    assert all(((0 <= array(t["y"])) & (array(t["y"]) <= 1)).all() for t in by_length["data"])
    weights = chart(at, "rnn_cost_attention_weights")["data"]
    lengths = array(weights[0]["x"])
    assert list(lengths) == [16, 32, 64, 128, 256, 512]
    assert list(array(weights[0]["y"])) == [3 * 2 * n * n for n in lengths]  # 3 attention modules x 2 heads x T x T
    assert list(array(weights[1]["y"])) == [n * n for n in lengths] and not array(weights[2]["y"]).any()


def test_missing_shipped_models_say_how_to_get_them(model_dirs):
    at = open_page()
    assert not at.exception
    assert any("Train all three here" in i.value for i in at.info)
    assert not at.get("plotly_chart")


def test_train_all_three_here(model_dirs, monkeypatch):
    def build_preset(name, seed=0):
        task, model = tiny(name.split("-", 1)[1], seed)
        return task, model, TrainConfig(steps=4, batch_size=8, eval_every=2, snapshot_every=0, device="cpu", seed=seed)

    monkeypatch.setattr(presets, "build_preset", build_preset)
    at = open_page()
    at.radio(key="rnn_source").set_value("here").run()
    assert not at.exception and not at.get("plotly_chart")
    at.button(key="rnn_train").click().run()
    runs = at.session_state["rnn_runs"]["reverse"]
    assert list(runs) == list(compare.LABELS)
    for run in runs.values():
        run.join(60)
    at.run()
    assert not at.exception
    summary = at.dataframe[0].value
    assert list(summary["steps"]) == [4, 4, 4]
    assert len({run.task.seed for run in runs.values()}) == 1  # the same data for all three
    assert [t["name"] for t in chart(at, "rnn_exact")["data"]] == ["Transformer", "LSTM + attention", "LSTM"]
