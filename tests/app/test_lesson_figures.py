"""The course topics' figures hold the numbers they are given, on the axes they name, with token labels escaped,
and name them in the session's language."""
import numpy as np
import pandas as pd
import pytest
import torch
from page_helpers import figure_texts, latin_words

from attnviz.app import lesson_figures
from attnviz.interpret.padding import PaddingCheck


FRAMES = {"LSTM": pd.DataFrame({"distance": [5, 4, 3], "gradient": [0.1, 0.5, 2.0], "relative": [0.05, 0.25, 1]}),
          "a <b>": pd.DataFrame({"distance": [5, 4, 3], "gradient": [3.0, 1.0, 1.0], "relative": [1, 1 / 3, 1 / 3]})}
STATS = pd.DataFrame({"d_k": [1, 4, 16], "variance": [1.1, 3.9, 16.2], "scaled variance": [1.1, 0.97, 1.01],
                      "expected variance": [1.0, 4.0, 16.0], "entropy": [2.4, 1.8, 0.9],
                      "scaled entropy": [2.4, 2.39, 2.36], "max gradient": [0.14, 0.2, 0.17],
                      "scaled max gradient": [0.14, 0.16, 0.17]})


def padding_check():
    mask = torch.tensor([[False, False, True], [False, False, False]])
    return PaddingCheck(torch.tensor([[4, 2, 0], [4, 5, 2]]), torch.tensor([[1], [1]]), mask,
                        [["a", "<eos>", "<pad>"], ["a", "b", "<eos>"]], pd.DataFrame())


def test_gradient_reach_has_one_line_per_model_on_a_log_axis():
    fig = lesson_figures.gradient_reach(FRAMES)
    assert [trace.name for trace in fig.data] == ["LSTM", "a &lt;b&gt;"]
    assert list(fig.data[0].x) == [5, 4, 3] and list(fig.data[0].y) == [0.1, 0.5, 2.0]
    assert fig.layout.yaxis.type == "log"
    assert list(lesson_figures.gradient_reach(FRAMES, "relative").data[1].y) == pytest.approx([1, 1 / 3, 1 / 3])


def test_gate_maps_are_units_by_time_with_the_tokens():
    rng = np.random.default_rng(0)
    gates = {"input": rng.uniform(size=(4, 3)), "cell": rng.normal(size=(4, 3))}  # (T, H)
    maps = lesson_figures.lstm_gate_maps(gates, ["a", "b", "<c>", "<eos>"])
    assert np.array_equal(np.asarray(maps["input"].data[0].z), gates["input"].T)  # (H, T): units down, time across
    assert list(maps["input"].layout.xaxis.ticktext) == ["a", "b", "&lt;c&gt;", "&lt;eos&gt;"]
    assert (maps["input"].data[0].zmin, maps["input"].data[0].zmax) == (0.0, 1.0)  # a gate: one fixed 0..1 scale
    assert maps["cell"].data[0].zmin == -maps["cell"].data[0].zmax  # the cell state: signed, centred on 0


def test_scaling_curves_by_d_k():
    charts = lesson_figures.scaling_curves(STATS)
    assert set(charts) == {"variance", "entropy", "gradient"}
    variance = {trace.name: list(trace.y) for trace in charts["variance"].data}
    assert variance == {"q·k": [1.1, 3.9, 16.2], "q·k / √d_k": [1.1, 0.97, 1.01], "closed form d_k": [1.0, 4.0, 16.0]}
    assert charts["variance"].layout.yaxis.type == "log" and charts["entropy"].layout.xaxis.type == "log"
    assert list(charts["entropy"].data[1].y) == [2.4, 2.39, 2.36]


def test_padded_batch_shows_the_mask_and_every_token():
    check = padding_check()
    fig = lesson_figures.padded_batch(check)
    assert np.array_equal(np.asarray(fig.data[0].z), check.key_padding_mask.numpy().astype(float))
    assert [list(row) for row in fig.data[0].text] == [["a", "&lt;eos&gt;", "&lt;pad&gt;"], ["a", "b", "&lt;eos&gt;"]]


def every_lesson_figure():
    gates = {"forget": np.full((3, 2), 0.5), "cell": np.zeros((3, 2))}  # (T, H)
    return {"gradient reach": lesson_figures.gradient_reach(FRAMES, "relative"),
            **{f"gate {name}": fig for name, fig in lesson_figures.lstm_gate_maps(gates, ["x", "y", "z"]).items()},
            **{f"scaling {name}": fig for name, fig in lesson_figures.scaling_curves(STATS).items()},
            "padded batch": lesson_figures.padded_batch(padding_check())}


@pytest.mark.parametrize("name", list(every_lesson_figure()))
def test_every_lesson_figure_is_in_chinese_in_a_chinese_session(name, chinese):
    # What stays Latin: the labels given (LSTM, a &lt;b&gt;, &lt;eos&gt; ...), PAD, and notation
    notation = {"softmax", "d_k", "f_t", "c_t", "p_i", "s_j", "PAD"}
    fig = every_lesson_figure()[name]
    assert latin_words(figure_texts(fig)) <= {"LSTM", "lt", "gt", "eos", "pad", *notation}
    assert '"Noto Sans CJK SC"' in fig.layout.font.family


def test_lesson_figures_take_their_words_from_the_catalog(chinese):
    figs = every_lesson_figure()
    assert figs["gate forget"].layout.title.text == chinese.gettext("Forget gate") + " f_t" != "Forget gate f_t"
    assert figs["gate forget"].data[0].colorbar.title.text == "f_t"
    assert figs["gate forget"].layout.xaxis.title.text == chinese.gettext("time step (token read)")
    assert figs["gradient reach"].layout.title.text == chinese.gettext(
        "Gradient reaching each input, by distance (largest = 1)")
    variance = figs["scaling variance"]
    assert [trace.name for trace in variance.data][-1] == chinese.gettext("closed form d_k")
    assert variance.data[-1].line.dash == "dash"  # the closed form is still drawn as the dashed reference
    hover = figs["padded batch"].data[0].customdata
    assert hover[0][2] == chinese.gettext("input {input}, position {position}: {token}").format(
        input=0, position=2, token="&lt;pad&gt;") + "<br>" + chinese.gettext("PAD: masked")
