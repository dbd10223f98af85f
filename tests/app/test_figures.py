"""Figures carry exactly the data they are given: values, labels (duplicates too), shapes, masked cells; their words
are in the session's language, in fonts that have Chinese glyphs."""
import numpy as np
import pytest
import torch
from page_helpers import figure_texts, latin_words

from attnviz.app import figures, head_view

TOKENS = ["<bos>", "the", "cat", "saw", "the", "dog"]  # "the" twice: must stay two columns


def weights(Tq, Tk, seed=0):
    torch.manual_seed(seed)
    return torch.randn(Tq, Tk).softmax(-1)  # (Tq, Tk)


def test_attention_heatmap_carries_weights_and_duplicate_labels():
    w = weights(6, 6)
    fig = figures.attention_heatmap(w, TOKENS, TOKENS, "head")
    heatmap = fig.data[0]
    np.testing.assert_array_equal(np.asarray(heatmap.z), w.double().numpy())
    assert list(fig.layout.xaxis.ticktext) == TOKENS and list(fig.layout.yaxis.ticktext) == TOKENS
    assert list(fig.layout.xaxis.tickvals) == list(range(6))
    assert (heatmap.zmin, heatmap.zmax) == (0.0, 1.0)
    assert fig.layout.title.text == "head"
    assert fig.layout.xaxis.title.text == "key" and fig.layout.yaxis.title.text == "query"
    assert "'the'" in heatmap.text[4][1] and f"{w[4, 1].item():.4g}" in heatmap.text[4][1]


def test_attention_heatmap_is_rectangular_for_cross_attention():
    w = weights(3, 6)
    fig = figures.attention_heatmap(w, ["a", "b", "a"], TOKENS)
    assert np.asarray(fig.data[0].z).shape == (3, 6)
    assert list(fig.layout.yaxis.ticktext) == ["a", "b", "a"]
    assert list(fig.layout.xaxis.ticktext) == TOKENS


def test_masked_cells_are_empty_and_hover_as_masked():
    w = weights(4, 4)
    causal = torch.ones(4, 4, dtype=torch.bool).triu(1)
    fig = figures.attention_heatmap(w, masked=causal)
    z = np.asarray(fig.data[0].z)
    assert np.isnan(z[causal.numpy()]).all()
    np.testing.assert_array_equal(z[~causal.numpy()], w.double().numpy()[~causal.numpy()])
    assert fig.data[0].text[0][3].endswith("masked") and not fig.data[0].text[3][0].endswith("masked")


def test_non_finite_values_show_as_masked():
    scores = torch.tensor([[1.0, -float("inf")], [-2.0, 3.0]])
    fig = figures.matrix_heatmap(scores, ["q0", "q1"], ["k0", "k1"], "scores")
    z = np.asarray(fig.data[0].z)
    assert np.isnan(z[0, 1]) and z[1, 0] == -2.0
    assert fig.data[0].text[0][1].endswith("masked")


@pytest.mark.parametrize("bad", [
    dict(query_labels=["a", "b"]),  # wrong number of labels
    dict(masked=np.zeros((3, 3), dtype=bool)),  # wrong mask shape
])
def test_mismatched_inputs_are_value_errors(bad):
    with pytest.raises(ValueError):
        figures.attention_heatmap(weights(4, 4), **bad)


def test_matrix_heatmap_is_diverging_and_symmetric_for_signed_data():
    m = torch.tensor([[-1.0, 0.5, 2.0], [0.0, -3.0, 1.0]])
    heatmap = figures.matrix_heatmap(m).data[0]
    np.testing.assert_array_equal(np.asarray(heatmap.z), m.double().numpy())
    assert (heatmap.zmin, heatmap.zmax) == (-3.0, 3.0)
    assert heatmap.colorscale == figures.matrix_heatmap(m, diverging=True).data[0].colorscale
    assert heatmap.colorscale != figures.matrix_heatmap(m.abs()).data[0].colorscale


def test_attention_grid_has_every_layer_and_head_in_order():
    torch.manual_seed(0)
    patterns = torch.rand(2, 3, 4, 5).softmax(-1)  # (L, H, Tq, Tk): rectangular
    fig = figures.attention_grid(patterns, "grid", off={(1, 2)})
    assert len(fig.data) == 6
    for l in range(2):
        for h in range(3):
            trace = fig.data[l * 3 + h]
            assert trace.name == f"layer {l} head {h}"
            np.testing.assert_array_equal(np.asarray(trace.z), patterns[l, h].double().numpy())
    assert (fig.layout.coloraxis.cmin, fig.layout.coloraxis.cmax) == (0.0, 1.0)
    titles = [a.text for a in fig.layout.annotations]
    assert titles[0] == "L0 H0" and titles[5] == "L1 H2 off"


def cell_px(fig, rows, cols):
    """(width, height) in px of one cell of a figure's heatmap that fills its plot area, from its layout."""
    layout = fig.layout
    plot_width = layout.width - layout.margin.l - layout.margin.r
    plot_height = layout.height - layout.margin.t - layout.margin.b
    return plot_width / cols, plot_height / rows


def test_attention_cells_are_square_and_nothing_pads_the_grey_background():
    # Grey is what masked cells show; a margin padding would frame every heatmap in it.
    for shape, width in (((6, 6), 460), ((4, 9), 460), ((9, 4), 460), ((30, 30), 700), ((30, 30), 300)):
        zoom = figures.attention_heatmap(weights(*shape), width=width)
        cell_width, cell_height = cell_px(zoom, *shape)
        assert zoom.layout.width <= width
        assert cell_width == pytest.approx(cell_height, abs=1.5 / min(shape))  # square, to a pixel of rounding
        assert zoom.layout.margin.pad == 0
    grid = figures.attention_grid(torch.rand(2, 3, 4, 4))
    for i in range(1, 7):  # subplot i: yaxis{i} is tied to xaxis{i}
        suffix = "" if i == 1 else str(i)
        assert grid.layout[f"yaxis{suffix}"].scaleanchor == f"x{suffix}"
    assert grid.layout.margin.pad == 0


def test_attention_grid_masks_every_head():
    causal = torch.ones(3, 3, dtype=torch.bool).triu(1)
    fig = figures.attention_grid(torch.full((1, 2, 3, 3), 0.5), masked=causal)
    for trace in fig.data:
        assert np.isnan(np.asarray(trace.z)[causal.numpy()]).all()


def test_stat_heatmap_values_and_axes():
    values = np.array([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]])
    fig = figures.stat_heatmap(values, "entropy")
    np.testing.assert_array_equal(np.asarray(fig.data[0].z), values)
    assert list(fig.layout.yaxis.ticktext) == ["L0", "L1", "L2"]
    assert list(fig.layout.xaxis.ticktext) == ["H0", "H1"]
    assert "entropy" in fig.layout.title.text
    assert (fig.data[0].zmin, fig.data[0].zmax) == (0.0, 0.6)  # a non-negative statistic is coloured from 0
    assert figures.stat_heatmap(values - 0.5, "change").data[0].zmin is None


def test_positional_and_similarity_heatmaps():
    table = torch.randn(10, 8)
    fig = figures.positional_heatmap(table)
    np.testing.assert_allclose(np.asarray(fig.data[0].z), table.double().numpy())
    assert fig.layout.xaxis.title.text == "dimension" and fig.layout.yaxis.title.text == "position"
    sim = figures.similarity_heatmap(table @ table.T, [f"p{i}" for i in range(10)])
    np.testing.assert_allclose(np.asarray(sim.data[0].z), (table @ table.T).double().numpy())
    assert cell_px(sim, 10, 10)[0] == pytest.approx(cell_px(sim, 10, 10)[1], abs=0.1)
    narrow = figures.similarity_heatmap(table @ table.T, width=350)
    assert narrow.layout.height < sim.layout.height  # a narrower chart is lower, so the square fills it
    with pytest.raises(ValueError):
        figures.similarity_heatmap(torch.randn(3, 4))


def test_curves_carry_each_series():
    x = np.arange(5)
    fig = figures.curves(x, {"sin": np.sin(x), "val": ([0, 4], [1.0, 2.0])}, "t", "position", "value")
    assert [t.name for t in fig.data] == ["sin", "val"]
    np.testing.assert_array_equal(np.asarray(fig.data[0].x), x)
    np.testing.assert_array_equal(np.asarray(fig.data[0].y), np.sin(x))
    np.testing.assert_array_equal(np.asarray(fig.data[1].x), [0, 4])
    assert fig.layout.xaxis.title.text == "position"
    with pytest.raises(ValueError):
        figures.curves(x, {"short": [1.0, 2.0]})


def test_probability_bars_mark_the_chosen_token():
    tokens, probs = ["a", "b", "a"], [0.5, 0.3, 0.2]
    fig = figures.probability_bars(tokens, probs, chosen=1)
    np.testing.assert_array_equal(np.asarray(fig.data[0].y), probs)
    assert list(fig.layout.xaxis.ticktext) == tokens
    assert list(fig.data[0].marker.line.width) == [0, 3, 0]
    assert tuple(fig.layout.yaxis.range) == (0, 1.08)


def test_probability_bars_group_before_and_after():
    fig = figures.probability_bars(["x", "y"], {"before": [0.9, 0.1], "after": [0.4, 0.6]})
    assert [t.name for t in fig.data] == ["before", "after"]
    np.testing.assert_array_equal(np.asarray(fig.data[1].y), [0.4, 0.6])
    with pytest.raises(ValueError):
        figures.probability_bars(["x"], [0.5, 0.5])


def test_beam_tree_places_leaves_apart_and_parents_between_their_children():
    nodes = [dict(id=0, parent=None, step=0, label="<bos>", fate="start", best=True),
             dict(id=1, parent=0, step=1, label="a", fate="kept", best=True, score=-0.1),
             dict(id=2, parent=0, step=1, label="b", fate="pruned", best=False, score=-2.0),
             dict(id=3, parent=1, step=2, label="<eos>", fate="finished", best=True, score=-0.3),
             dict(id=4, parent=1, step=2, label="a", fate="pruned", best=False, score=-1.0)]
    y = figures.tree_positions(nodes)
    assert sorted(y[i] for i in (2, 3, 4)) == [0, 1, 2]  # the leaves
    assert y[1] == (y[3] + y[4]) / 2 and y[0] == (y[1] + y[2]) / 2
    fig = figures.beam_tree(nodes)
    traces = {t.name: t for t in fig.data}
    assert list(traces["finished"].text) == ["<eos>"] and list(traces["pruned"].x) in ([1, 2], [2, 1])
    assert traces["best hypothesis"].x == (0, 1, None, 1, 2, None)  # edges start -> a -> <eos>
    assert traces["extends"].x.count(None) == 2  # the two pruned edges
    y = dict(zip(traces["pruned"].text, traces["pruned"].y))
    assert traces["finished"].y[0] < y["a"] < y["b"]  # children by score, best at the top (the axis is reversed)
    assert fig.layout.yaxis.autorange == "reversed"


def heatmap_figures():
    """One figure of every heatmap builder, with labels long enough to need room, masked cells and both signs."""
    labels = [f"token{i}" for i in range(8)]
    causal = torch.ones(8, 8, dtype=torch.bool).triu(1)
    return {"attention": figures.attention_heatmap(weights(8, 8), labels, labels, "head", masked=causal, width=700),
            "cross": figures.attention_heatmap(weights(3, 8), labels[:3], labels, width=300),
            "one row": figures.attention_heatmap(weights(1, 5)),
            "matrix": figures.matrix_heatmap(torch.randn(5, 40), title="Q"),
            "square matrix": figures.matrix_heatmap(torch.randn(16, 16), square=True, width=560),
            "statistic": figures.stat_heatmap(np.random.rand(3, 4), "entropy"),
            "positional": figures.positional_heatmap(torch.randn(50, 64)),
            "similarity": figures.similarity_heatmap(torch.randn(6, 6), width=280)}


@pytest.mark.parametrize("name", list(heatmap_figures()))
def test_colour_bars_are_as_tall_as_their_heatmaps(name):
    # A colour bar's `len` is a fraction of the plot area's height; the heatmap is as tall as the plot area when
    # nothing shrinks its y axis (a scale anchor shrinks it in a column narrower than the figure was made for:
    # twice as tall a colour bar as its heatmap at 1024 px) and its rows fill the y range.
    fig = heatmap_figures()[name]
    heatmap = fig.data[0]
    bar = heatmap.colorbar
    assert (bar.len, bar.lenmode, bar.y, bar.yanchor, bar.yref, bar.ypad) == (1, "fraction", 1, "top", "paper", 0)
    assert fig.layout.yaxis.scaleanchor is None and fig.layout.xaxis.scaleanchor is None
    assert tuple(fig.layout.yaxis.domain or (0, 1)) == (0, 1)
    assert fig.layout.yaxis.range is None  # autorange: the rows from edge to edge, nothing beyond them
    rows = len(np.asarray(heatmap.z))
    assert list(heatmap.y) == list(range(rows))


def test_the_grid_shares_one_colour_bar_as_tall_as_its_plot_area():
    bar = figures.attention_grid(torch.rand(2, 3, 4, 4)).layout.coloraxis.colorbar
    assert (bar.len, bar.lenmode, bar.y, bar.yanchor) == (1, "fraction", 1, "top")


def test_log_axes_label_every_tick_with_its_magnitude():
    # plotly labels the minor ticks of a log axis with their leading digit alone ("5 2 1 5 2 0.1") unless the axis
    # has a tickformat; then every tick shows its value (the browser test reads the drawn labels).
    fig = figures.curves([1, 2, 3], {"loss": [5.0, 0.8, 0.09]}, log_y=True)
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis.tickformat
    assert figures.curves([1, 2], {"accuracy": [0.5, 0.9]}).layout.yaxis.type in (None, "linear", "-")


def texts_of(fig):
    """Every explicit font size of a figure's layout, axes, annotations and traces."""
    layout = fig.layout
    sizes = [layout.font.size, layout.title.font.size, layout.legend.font.size]
    sizes += [axis.tickfont.size for axis in (*fig.select_xaxes(), *fig.select_yaxes())]
    sizes += [a.font.size for a in layout.annotations] + [t.textfont.size for t in fig.data if "textfont" in t]
    return sizes


def test_presented_figures_have_larger_text_and_leave_the_original_alone():
    grid = figures.attention_grid(torch.rand(2, 2, 3, 3))
    for fig in (grid, figures.probability_bars(["a", "b"], [0.4, 0.6]), heatmap_figures()["attention"]):
        shown = figures.presented(fig)
        assert all(size >= figures.PRESENTER_FONT_PX for size in texts_of(shown))
        assert all(size is None or size < figures.PRESENTER_FONT_PX for size in texts_of(fig))  # a copy


BEAM_NODES = [dict(id=0, parent=None, step=0, label="<bos>", fate="start", best=True),
              dict(id=1, parent=0, step=1, label="a", fate="kept", best=True, score=-0.1, logprob=-0.1),
              dict(id=2, parent=0, step=1, label="b", fate="pruned", best=False, score=-2.0, logprob=-2.0),
              dict(id=3, parent=1, step=2, label="<eos>", fate="finished", best=True, score=-0.3, logprob=-0.2)]


def every_figure():
    """One figure of every builder of figures.py and head_view.py, each with the words it makes up itself (the
    titles are the caller's: none here, or its own default)."""
    labels = ["a", "b", "a", "c"]
    causal = torch.ones(4, 4, dtype=torch.bool).triu(1)
    grid = figures.attention_grid(torch.rand(2, 2, 4, 4), masked=causal, off={(1, 0)})
    return {"matrix": figures.matrix_heatmap(torch.randn(4, 3), masked=causal[:, :3]),
            "attention": figures.attention_heatmap(weights(4, 4), labels, labels, masked=causal),
            "grid": grid,
            "clickable grid": figures.attention_grid(torch.rand(1, 2, 4, 4), clickable=True),
            "statistic": figures.stat_heatmap(np.random.rand(2, 3), "H"),
            "positional": figures.positional_heatmap(torch.randn(6, 4)),
            "similarity": figures.similarity_heatmap(torch.randn(3, 3)),
            "curves": figures.curves([0, 1, 2], {"a": [1.0, 2.0, 3.0]}, log_y=True),
            "bars": figures.probability_bars(labels, [0.4, 0.3, 0.2, 0.1], chosen=0),
            "beam tree": figures.beam_tree(BEAM_NODES),
            "head view": head_view.head_view(weights(4, 4)[None].repeat(2, 1, 1), labels, labels, heads=[0, 1]),
            "presented": figures.presented(grid)}


CJK_FAMILIES = ("Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei")  # Linux and Android, Apple, Windows


@pytest.mark.parametrize("name", list(every_figure()))
def test_every_figure_draws_its_text_in_a_font_stack_with_chinese_glyphs(name):
    # Streamlit's theme names its own font for titles and hover labels, which would win over the layout's.
    layout = every_figure()[name].layout
    for family in (layout.font.family, layout.title.font.family, layout.hoverlabel.font.family):
        assert all(f'"{cjk}"' in family for cjk in CJK_FAMILIES)
        assert family.endswith(", sans-serif")  # the browser's own, when the machine has none of them


@pytest.mark.parametrize("name", list(every_figure()))
def test_every_figure_is_in_chinese_in_a_chinese_session(name, chinese):
    assert latin_words(figure_texts(every_figure()[name])) == set()  # the labels given are single letters


def test_an_english_session_reads_the_same_figures_in_english():
    shown = every_figure()
    assert {"query", "key", "weight", "masked"} <= latin_words(figure_texts(shown["attention"]))
    assert {"layer", "head", "off", "query", "key", "weight"} <= latin_words(figure_texts(shown["grid"]))
    assert {"Beam", "search", "tree", "step", "pruned", "best", "hypothesis"} <= latin_words(
        figure_texts(shown["beam tree"]))


def test_chinese_axes_hovers_and_legends_come_from_the_catalog(chinese):
    causal = torch.ones(3, 3, dtype=torch.bool).triu(1)
    zoom = figures.attention_heatmap(weights(3, 3), ["x", "y", "z"], ["x", "y", "z"], masked=causal)
    assert zoom.layout.xaxis.title.text == chinese.gettext("key") != "key"
    assert zoom.layout.yaxis.title.text == chinese.gettext("query")
    assert zoom.data[0].colorbar.title.text == chinese.gettext("weight")
    hover = zoom.data[0].text
    assert hover[0][2].startswith(chinese.gettext("query") + " 0 'x'<br>" + chinese.gettext("key") + " 2 'z'")
    assert hover[0][2].endswith(chinese.gettext("masked")) and chinese.gettext("weight") in hover[2][0]
    grid = figures.attention_grid(torch.rand(1, 2, 3, 3), off={(0, 1)})
    assert grid.data[1].name == chinese.gettext("layer {layer} head {head}").format(layer=0, head=1)
    assert chinese.gettext("query %{y} key %{x}<br>weight %{z:.3f}") in grid.data[1].hovertemplate
    assert "%{y}" in grid.data[1].hovertemplate and "%{z:.3f}" in grid.data[1].hovertemplate  # plotly's fields
    assert grid.layout.annotations[1].text == "L0 H1 " + chinese.gettext("off")
    tree = figures.beam_tree(BEAM_NODES)
    assert {trace.name for trace in tree.data} == {chinese.gettext(word) for word in (
        "best hypothesis", "extends", "start", "kept", "finished", "pruned")}
    assert tree.layout.title.text == chinese.gettext("Beam search tree")
    assert tree.layout.xaxis.title.text == chinese.gettext("step")


def test_a_title_given_is_kept_and_an_empty_axis_title_stays_empty(chinese):
    fig = figures.attention_heatmap(weights(2, 2), title="我的标题", x_title="", y_title="源")
    assert fig.layout.title.text == "我的标题"
    assert fig.layout.xaxis.title.text in (None, "") and fig.layout.yaxis.title.text == "源"
    assert figures.positional_heatmap(torch.randn(3, 2), title="").layout.title.text in (None, "")
