"""The course topics' figures hold the numbers they are given, on the axes they name, with token labels escaped."""
import numpy as np
import pandas as pd
import pytest
import torch

from attnviz.app import lesson_figures
from attnviz.interpret.padding import PaddingCheck


def test_gradient_reach_has_one_line_per_model_on_a_log_axis():
    frames = {"LSTM": pd.DataFrame({"distance": [5, 4, 3], "gradient": [0.1, 0.5, 2.0], "relative": [0.05, 0.25, 1]}),
              "a <b>": pd.DataFrame({"distance": [5, 4, 3], "gradient": [3.0, 1.0, 1.0], "relative": [1, 1 / 3, 1 / 3]})}
    fig = lesson_figures.gradient_reach(frames)
    assert [trace.name for trace in fig.data] == ["LSTM", "a &lt;b&gt;"]
    assert list(fig.data[0].x) == [5, 4, 3] and list(fig.data[0].y) == [0.1, 0.5, 2.0]
    assert fig.layout.yaxis.type == "log"
    assert list(lesson_figures.gradient_reach(frames, "relative").data[1].y) == pytest.approx([1, 1 / 3, 1 / 3])


def test_gate_maps_are_units_by_time_with_the_tokens():
    rng = np.random.default_rng(0)
    gates = {"input": rng.uniform(size=(4, 3)), "cell": rng.normal(size=(4, 3))}  # (T, H)
    maps = lesson_figures.lstm_gate_maps(gates, ["a", "b", "<c>", "<eos>"])
    assert np.array_equal(np.asarray(maps["input"].data[0].z), gates["input"].T)  # (H, T): units down, time across
    assert list(maps["input"].layout.xaxis.ticktext) == ["a", "b", "&lt;c&gt;", "&lt;eos&gt;"]
    assert (maps["input"].data[0].zmin, maps["input"].data[0].zmax) == (0.0, 1.0)  # a gate: one fixed 0..1 scale
    assert maps["cell"].data[0].zmin == -maps["cell"].data[0].zmax  # the cell state: signed, centred on 0


def test_scaling_curves_by_d_k():
    stats = pd.DataFrame({"d_k": [1, 4, 16], "variance": [1.1, 3.9, 16.2], "scaled variance": [1.1, 0.97, 1.01],
                          "expected variance": [1.0, 4.0, 16.0], "entropy": [2.4, 1.8, 0.9],
                          "scaled entropy": [2.4, 2.39, 2.36], "max gradient": [0.14, 0.2, 0.17],
                          "scaled max gradient": [0.14, 0.16, 0.17]})
    charts = lesson_figures.scaling_curves(stats)
    assert set(charts) == {"variance", "entropy", "gradient"}
    variance = {trace.name: list(trace.y) for trace in charts["variance"].data}
    assert variance == {"q·k": [1.1, 3.9, 16.2], "q·k / √d_k": [1.1, 0.97, 1.01], "closed form d_k": [1.0, 4.0, 16.0]}
    assert charts["variance"].layout.yaxis.type == "log" and charts["entropy"].layout.xaxis.type == "log"
    assert list(charts["entropy"].data[1].y) == [2.4, 2.39, 2.36]


def test_padded_batch_shows_the_mask_and_every_token():
    mask = torch.tensor([[False, False, True], [False, False, False]])
    check = PaddingCheck(torch.tensor([[4, 2, 0], [4, 5, 2]]), torch.tensor([[1], [1]]), mask,
                         [["a", "<eos>", "<pad>"], ["a", "b", "<eos>"]], pd.DataFrame())
    fig = lesson_figures.padded_batch(check)
    assert np.array_equal(np.asarray(fig.data[0].z), mask.numpy().astype(float))
    assert [list(row) for row in fig.data[0].text] == [["a", "&lt;eos&gt;", "&lt;pad&gt;"], ["a", "b", "&lt;eos&gt;"]]
