"""Plotly figure builders: pure functions from arrays (or tensors) and token labels to `go.Figure`.

No streamlit here: pages only place what these return. Conventions shared by every heatmap:
- Axes are integer positions with the token labels as tick text, so repeated tokens ("the" ... "the")
  stay separate columns instead of being merged by plotly as equal categories.
- Row 0 is at the top, like a printed matrix; hovering a cell names its row, column and value.
- Masked cells (and any non-finite value, e.g. -inf scores) are left empty: they show the grey
  background (no padding around the plot area, so grey means masked and nothing else) and hover as "masked".
- Attention weights use one fixed 0..1 colour scale so heads can be compared by eye, and square cells.
- A colour bar is exactly as tall as its heatmap (`colorbar`): a single heatmap fills its plot area, and a
  square-celled one gets a figure width and height that make its cells square (`square_size`) instead of an axis
  constraint that shrinks the heatmap away from its colour bar in a narrow column.
- Log axes label every tick with its magnitude ("0.2 0.5 1 2"), not the leading digit alone (`LOG_TICKS`).
- Every word a figure shows (axis and colour-bar titles, hovers, legends, default titles) is in the session's
  language (attnviz.i18n), and its text is drawn in a font stack that has Chinese glyphs (`FONT_FAMILY`).
"""
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from attnviz.i18n import N_, _

ATTENTION_COLORS = "Blues"
DIVERGING_COLORS = "RdBu_r"  # red positive, blue negative, white at zero
SEQUENTIAL_COLORS = "Viridis"
MASKED_COLOR = "#d0d0d0"
SERIES_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
CELL_PX = 24  # height of one heatmap row in pixels, within limits
SQUARE_CELL_PX = 36  # the same for square cells (attention, similarity), unless the width asks for less
CHART_WIDTH = 460  # px: what a square-celled chart is drawn at unless told (half of the wide layout)
MAX_HEIGHT = 760
COLORBAR_PX = 80  # what a colour bar with its ticks and title takes right of the plot area
TICK_CHAR_PX = 7  # the width of one character of a tick label, to leave room for the labels
MIN_PLOT_PX = 120  # a heatmap of one or two rows is drawn at least this high (its cells taller than wide)
LOG_TICKS = dict(tickformat=",.2~r")  # 2 significant digits, no trailing zeros: 0.05, 0.2, 1, 20, 1,000
# Streamlit's own font (its web font, served by Streamlit itself, has Latin glyphs only), then the Simplified Chinese
# fonts that systems ship (Linux and Android, macOS and iOS, Windows, older Linux): the browser takes each character
# from the first family that has it. Nothing is fetched: a family the machine lacks is skipped.
LATIN_FONTS = ("Source Sans", "Source Sans Pro", "Source Sans 3")
CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans SC", "PingFang SC", "Hiragino Sans GB", "Microsoft YaHei",
             "WenQuanYi Micro Hei")
FONT_FAMILY = ", ".join(f'"{family}"' for family in (*LATIN_FONTS, *CJK_FONTS)) + ", sans-serif"


def as_array(x, ndim=None, name="array"):
    """A float numpy array from a tensor, array or nested list; checks the number of dimensions."""
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    x = np.asarray(x, dtype=float)
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(x.shape)}")
    return x


def check_labels(labels, n, name):
    """Labels as strings (None stays None); a wrong count is a ValueError."""
    if labels is None:
        return None
    labels = [str(label) for label in labels]
    if len(labels) != n:
        raise ValueError(f"{name} has {len(labels)} labels but the data has {n} entries along that axis")
    return labels


def label_axis(labels, title, angle=0):
    """An integer axis showing `labels` as tick text (duplicates stay distinct), or plain numbers if None."""
    if labels is None:
        return dict(title=title, tickformat="d", showgrid=False, zeroline=False)
    crowded = max(map(len, labels), default=0) > 2 and sum(map(len, labels)) > 40
    return dict(title=title, tickmode="array", tickvals=list(range(len(labels))), ticktext=labels,
                tickangle=angle if crowded else 0, showgrid=False, zeroline=False)


def describe(i, labels):
    return f"{i} {labels[i]!r}" if labels else f"{i}"


def masked_values(z, masked):
    """(z with NaN where masked or non-finite, the combined bool mask)."""
    blocked = ~np.isfinite(z)
    if masked is not None:
        masked = np.asarray(masked.cpu() if hasattr(masked, "cpu") else masked, dtype=bool)
        if masked.shape != z.shape:
            raise ValueError(f"masked has shape {masked.shape} but the matrix has shape {z.shape}")
        blocked |= masked
    return np.where(blocked, np.nan, z), blocked


def compact_style(title, height, background=MASKED_COLOR):
    """The layout every figure of the app has: title at the left, little margin, `FONT_FAMILY`; the background is
    what masked heatmap cells show.

    `pad=0`: a padding (Streamlit's theme sets 8 px) would widen the background into a grey frame. Streamlit's
    theme also names its own font for titles and hover labels, so those get the font stack too."""
    font = dict(family=FONT_FAMILY)  # nested dicts, not font_family=: plotly parses each such path, slowly
    return dict(title=dict(text=title, x=0.0, xanchor="left", font=font), height=int(height),
                margin=dict(l=10, r=10, t=50 if title else 20, b=10, pad=0), plot_bgcolor=background,
                font=font, hoverlabel=dict(font=font))


def compact_layout(fig, title, height, background=MASKED_COLOR):
    """`fig` with `compact_style`. (A figure redrawn every second is quicker built with its whole layout at once,
    `go.Figure(data=..., layout=...)`: each `update_layout` of a figure replays plotly's change callbacks.)"""
    return fig.update_layout(compact_style(title, height, background))


def colorbar(title):
    """A colour bar as tall as the plot area, from its top: `len` is a fraction of the plot area's height (with no
    padding inside it: `ypad`), so a heatmap that fills its plot area meets it at both ends, at any width."""
    return dict(title=dict(text=title, side="right"), thickness=12, len=1.0, lenmode="fraction", y=1.0,
                yanchor="top", yref="paper", ypad=0)


def label_px(labels, count):
    """The width in px of the longest tick label of an axis (`labels`, or the numbers 0..count-1)."""
    longest = max(map(len, labels), default=1) if labels is not None else len(str(max(count - 1, 0)))
    return TICK_CHAR_PX * longest


def square_size(rows, cols, width, row_labels, col_labels, titled, x_title, y_title):
    """(width, height, margin) of a figure whose (rows, cols) heatmap has square cells and fills its plot area.

    The margins leave room for the tick labels (the x labels turn by 60 degrees when crowded, as `label_axis`
    does) and the colour bar; the cells take what `width` leaves, at most SQUARE_CELL_PX. Drawing the figure at
    this width (`layout.width`, which ui.plotly_chart keeps) keeps the cells square; a narrower column
    narrows the cells and still leaves the heatmap as tall as its colour bar."""
    crowded = col_labels is not None and label_axis(col_labels, "", angle=-60)["tickangle"] != 0
    margin = dict(l=10 + label_px(row_labels, rows) + (24 if y_title else 0), r=COLORBAR_PX, t=50 if titled else 20,
                  b=10 + (round(0.87 * label_px(col_labels, cols)) if crowded else 20) + (24 if x_title else 0))
    cell = min(SQUARE_CELL_PX, (width - margin["l"] - margin["r"]) / cols)
    plot_height = min(max(cell * rows, MIN_PLOT_PX), MAX_HEIGHT - margin["t"] - margin["b"])
    return round(cell * cols) + margin["l"] + margin["r"], round(plot_height) + margin["t"] + margin["b"], margin


def square_cells(fig, toward="right", **subplot):
    """Make a heatmap's cells square, e.g. `row=1, col=2` for one subplot: the plot area shrinks to fit, toward
    the top and `toward` the right (beside its colour bar; tick labels move with it) or the centre (under a
    subplot's title)."""
    for yaxis in fig.select_yaxes(**subplot):
        yaxis.update(scaleanchor=yaxis.anchor or "x", scaleratio=1, constrain="domain", constraintoward="top")
    fig.update_xaxes(constrain="domain", constraintoward=toward, **subplot)
    return fig


def matrix_heatmap(matrix, row_labels=None, col_labels=None, title="", x_title="", y_title="",
                   masked=None, value_name=None, diverging=None, zmin=None, zmax=None, colorscale=None,
                   show_values=None, square=False, height=None, width=CHART_WIDTH):
    """Any (R, C) matrix as a labelled heatmap (Q, K, V, QK^T, weights, positional tables ...).

    `diverging=None` picks a diverging scale centred on 0 when the data has negative values.
    `show_values=None` writes the numbers into the cells when the matrix is small (at most 12 x 12).
    `square=True` makes the cells square at a figure width of at most `width` px (`square_size`); else
    `height=None` grows with the rows, within limits. `value_name=None` calls the values "value".
    """
    value_name = _("value") if value_name is None else value_name
    z, blocked = masked_values(as_array(matrix, 2, "matrix"), masked)
    rows, cols = z.shape
    row_labels, col_labels = check_labels(row_labels, rows, "row_labels"), check_labels(col_labels, cols, "col_labels")
    finite = z[~blocked]
    if diverging is None:
        diverging = finite.size > 0 and finite.min() < 0
    if diverging and zmin is None and zmax is None:
        zmax = float(np.abs(finite).max()) if finite.size else 1.0
        zmin = -zmax
    row_name, column_name, masked_text = y_title or _("row"), x_title or _("column"), _("masked")
    hover = [[f"{row_name} {describe(i, row_labels)}<br>{column_name} {describe(j, col_labels)}<br>"
              + (masked_text if blocked[i, j] else f"{value_name} {z[i, j]:.4g}") for j in range(cols)]
             for i in range(rows)]
    if show_values is None:
        show_values = rows <= 12 and cols <= 12
    fig = go.Figure(go.Heatmap(
        z=z, x=list(range(cols)), y=list(range(rows)), text=hover, hovertemplate="%{text}<extra></extra>",
        hoverongaps=True, colorscale=colorscale or (DIVERGING_COLORS if diverging else SEQUENTIAL_COLORS),
        zmin=zmin, zmax=zmax, colorbar=colorbar(value_name),
        texttemplate="%{z:.2f}" if show_values else None))
    fig.update_xaxes(label_axis(col_labels, x_title, angle=-60))
    fig.update_yaxes(label_axis(row_labels, y_title), autorange="reversed")
    if not square:
        return compact_layout(fig, title, height or min(max(CELL_PX * rows + 160, 360), MAX_HEIGHT))
    width, square_height, margin = square_size(rows, cols, width, row_labels, col_labels, title, x_title, y_title)
    compact_layout(fig, title, height or square_height)
    return fig.update_layout(width=width, margin=margin)


def attention_heatmap(weights, query_labels=None, key_labels=None, title="", masked=None,
                      x_title=None, y_title=None, show_values=False, height=None, width=CHART_WIDTH):
    """One head's (Tq, Tk) attention weights; square cells, so cross-attention is a rectangle; colour fixed to 0..1.

    `masked` (bool, (Tq, Tk), True = blocked, e.g. the causal triangle) shows those cells as masked. The axes are
    titled "key" and "query" unless told (`x_title`, `y_title`; "" for none).
    """
    x_title = _("key") if x_title is None else x_title
    y_title = _("query") if y_title is None else y_title
    return matrix_heatmap(weights, query_labels, key_labels, title, x_title, y_title, masked=masked,
                          value_name=_("weight"), diverging=False, zmin=0.0, zmax=1.0, colorscale=ATTENTION_COLORS,
                          show_values=show_values, square=True, height=height, width=width)


def attention_grid(patterns, title="", masked=None, off=(), width=900, clickable=False):
    """Every layer x head of (L, H, Tq, Tk) patterns as small heatmaps in one figure.

    Trace number `layer * H + head` is that head (its `name` says so). `masked` (Tq, Tk) applies to every
    head; heads in `off`, a set of (layer, head), are titled "off" (e.g. ablated ones). Cells are square;
    `width` is the width (px) the grid is drawn at, from which the rows get their height.

    `clickable=True` makes a click on a head select it: heatmaps send no selection events, so each head also
    gets one invisible square marker as large as its thumbnail (traces L*H onwards, named like their head,
    `customdata` [layer, head]), which plotly selects on a click and Streamlit reports
    (`st.plotly_chart(on_select=...)`).
    """
    patterns = as_array(patterns, 4, "patterns (layers, heads, queries, keys)")
    L, H, Tq, Tk = patterns.shape
    gap, title_px = min(0.02, 0.5 / H), 24  # between heads (a fraction of the width); above each head (px)
    side = (width - 80) * (1 - (H - 1) * gap) / H * Tq / Tk  # a head's height when its cells are square
    row_px = max(60, min(240, round(side) + title_px))
    off_text, cell_hover = _("off"), _("query %{y} key %{x}<br>weight %{z:.3f}")
    names = [[_("layer {layer} head {head}").format(layer=l, head=h) for h in range(H)] for l in range(L)]
    fig = make_subplots(rows=L, cols=H, horizontal_spacing=gap, vertical_spacing=title_px / (row_px * L),
                        subplot_titles=[f"L{l} H{h}" + (f" {off_text}" if (l, h) in off else "")
                                        for l in range(L) for h in range(H)])
    for l in range(L):
        for h in range(H):
            z, _blocked = masked_values(patterns[l, h], masked)
            fig.add_trace(go.Heatmap(
                z=z, coloraxis="coloraxis", name=names[l][h], hoverongaps=False,
                hoverinfo="skip" if clickable else None,
                hovertemplate=None if clickable else f"{names[l][h]}<br>{cell_hover}<extra></extra>"),
                row=l + 1, col=h + 1)
            square_cells(fig, "center", row=l + 1, col=h + 1)
    if clickable:
        thumbnail_px = min(side, row_px - title_px)
        for l in range(L):
            for h in range(H):
                fig.add_trace(go.Scatter(
                    x=[(Tk - 1) / 2], y=[(Tq - 1) / 2], customdata=[[l, h]], mode="markers", name=names[l][h],
                    marker=dict(symbol="square", size=thumbnail_px, opacity=0),
                    selected=dict(marker=dict(opacity=0)), unselected=dict(marker=dict(opacity=0)),
                    hovertemplate=_("layer {layer} head {head}: click to zoom").format(layer=l, head=h)
                    + "<extra></extra>", showlegend=False),
                    row=l + 1, col=h + 1)
        fig.update_layout(clickmode="event+select", dragmode=False)
    fig.update_xaxes(showticklabels=False, ticks="", showgrid=False, zeroline=False, range=[-0.5, Tk - 0.5])
    fig.update_yaxes(showticklabels=False, ticks="", showgrid=False, zeroline=False, range=[Tq - 0.5, -0.5])
    fig.update_annotations(font_size=11)
    fig.update_layout(coloraxis=dict(colorscale=ATTENTION_COLORS, cmin=0.0, cmax=1.0,
                                     colorbar=colorbar(_("weight"))))
    return compact_layout(fig, title, row_px * L + 60)


def stat_heatmap(values, stat, title=None, row_labels=None, col_labels=None):
    """A per-head statistic, (L, H), as a layer x head heatmap with the values written in, one low row per layer.

    A statistic that is never negative (entropy, distance, shares of weight) is coloured from 0, so two heads
    with nearly the same value do not look like opposites."""
    values = as_array(values, 2, "values (layers, heads)")
    L, H = values.shape
    rows = row_labels or [f"L{l}" for l in range(L)]
    cols = col_labels or [f"H{h}" for h in range(H)]
    finite = values[np.isfinite(values)]
    from_zero = finite.size and finite.min() >= 0
    zmin, zmax = (0.0, max(float(finite.max()), 1e-9)) if from_zero else (None, None)  # plotly needs both
    return matrix_heatmap(values, rows, cols, title or _("{stat} per head").format(stat=stat),
                          x_title=_("head"), y_title=_("layer"),
                          value_name=stat, diverging=False, show_values=True, zmin=zmin, zmax=zmax,
                          height=min(max(48 * L + 140, 200), MAX_HEIGHT))


def positional_heatmap(table, title=None, height=480):
    """A (T, D) positional-encoding table: positions down, dimensions across, signed colours; `title=None`:
    "Positional encoding"."""
    return matrix_heatmap(table, title=_("Positional encoding") if title is None else title,
                          x_title=_("dimension"), y_title=_("position"), value_name=_("value"),
                          diverging=True, show_values=False, height=height)


def similarity_heatmap(similarity, labels=None, title=None, value_name=None, width=CHART_WIDTH,
                       x_title="", y_title=""):
    """A square (N, N) similarity matrix (positions, sentences ...) with signed colours and square cells; `title`
    and `value_name` are "Similarity" and "similarity" unless told."""
    title = _("Similarity") if title is None else title
    value_name = _("similarity") if value_name is None else value_name
    similarity = as_array(similarity, 2, "similarity")
    if similarity.shape[0] != similarity.shape[1]:
        raise ValueError(f"a similarity matrix must be square, got shape {similarity.shape}")
    return matrix_heatmap(similarity, labels, labels, title, x_title, y_title, value_name=value_name,
                          diverging=True, show_values=None, square=True, width=width)


def curves(x, series, title="", x_title="", y_title="", log_y=False):
    """Named line series over a shared `x`; a series may also be an `(x, y)` pair of its own.

    E.g. chosen positional-encoding dimensions over positions, or training and validation loss by step. Train live
    redraws these every second: the figure is built with its layout at once (see `compact_layout`).
    """
    x = as_array(x, 1, "x")
    traces = []
    for i, (name, values) in enumerate(series.items()):
        xs, ys = (as_array(values[0], 1, name), as_array(values[1], 1, name)) if isinstance(values, tuple) \
            else (x, as_array(values, 1, name))
        if len(xs) != len(ys):
            raise ValueError(f"series {name!r} has {len(ys)} values for {len(xs)} x positions")
        traces.append(go.Scatter(x=xs, y=ys, mode="lines", name=str(name),
                                 line=dict(color=SERIES_COLORS[i % len(SERIES_COLORS)])))
    axes = dict(xaxis=dict(title=x_title, gridcolor="#eee"), legend=dict(orientation="h", y=-0.25),
                yaxis=dict(title=y_title, gridcolor="#eee", **(dict(type="log", **LOG_TICKS) if log_y else {})))
    return go.Figure(data=traces, layout=compact_style(title, 340, background="white") | axes)


def probability_bars(tokens, probs, chosen=None, title=None):
    """Bars of token probabilities on a fixed 0..1 axis; `probs` is one (N,) array or {name: (N,)}
    (e.g. before/after an ablation, grouped). The bar at index `chosen` gets a dark outline. `title=None`:
    "Next-token probabilities"."""
    title = _("Next-token probabilities") if title is None else title
    series = probs if isinstance(probs, dict) else {_("probability"): probs}
    labels = check_labels(tokens, len(tokens), "tokens")
    fig = go.Figure()
    for i, (name, values) in enumerate(series.items()):
        values = as_array(values, 1, str(name))
        if len(values) != len(labels):
            raise ValueError(f"{len(values)} probabilities for {len(labels)} tokens in {name!r}")
        outline = [3 if j == chosen else 0 for j in range(len(values))]
        fig.add_trace(go.Bar(
            x=list(range(len(values))), y=values, name=str(name),
            text=[f"{p:.2f}" for p in values] if len(series) == 1 else None,  # grouped: side by side they overlap
            textposition="outside", customdata=labels,
            hovertemplate="%{customdata}: %{y:.4f}<extra>" + str(name) + "</extra>",
            marker=dict(color=SERIES_COLORS[i % len(SERIES_COLORS)], line=dict(width=outline, color="#222"))))
    fig.update_xaxes(label_axis(labels, _("token"), angle=-45))
    fig.update_yaxes(title=_("probability"), range=[0, 1.08])
    fig.update_layout(barmode="group", showlegend=len(series) > 1, legend=dict(orientation="h", x=1, xanchor="right", y=1.12))
    return compact_layout(fig, title, 340, background="white")


FATE_COLORS = {"start": "#222222", "kept": "#1f77b4", "finished": "#2ca02c", "pruned": "#b0b0b0"}
FATE_NAMES = {"start": N_("start"), "kept": N_("kept"), "finished": N_("finished"), "pruned": N_("pruned")}  # legend
BEST_COLOR = "#ff7f0e"


def tree_positions(nodes):
    """{node id: y}: leaves one apart from top to bottom (children in the given order), parents centred on theirs."""
    children = {node["id"]: [] for node in nodes}
    for node in nodes:
        if node["parent"] is not None:
            children[node["parent"]].append(node["id"])
    y, leaves = {}, []

    def place(i):  # depth-first; a tree is at most as deep as a model's max_len
        for child in children[i]:
            place(child)
        if not children[i]:
            leaves.append(i)
        y[i] = sum(y[c] for c in children[i]) / len(children[i]) if children[i] else len(leaves) - 1

    for node in nodes:
        if node["parent"] is None:
            place(node["id"])
    return y


def beam_tree(nodes, title=None):
    """A search tree: one column per step, nodes coloured by fate (`FATE_COLORS`: kept as a beam, finished
    with EOS, pruned), the path of the best hypothesis in orange. `nodes`: dicts with id, parent (None for
    the roots), step, label, fate, best, and optional logprob/score for the hover (`decoding_views.beam_tree`).
    `title=None`: "Beam search tree"."""
    title = _("Beam search tree") if title is None else title
    node_hover = _("%{text} (step %{x})<br>log-prob %{customdata[0]:.3f}<br>score %{customdata[1]:.3f}")
    nodes = sorted(nodes, key=lambda n: -n.get("score", 0.0))  # best candidates at the top of their parent
    y, by_id = tree_positions(nodes), {n["id"]: n for n in nodes}
    fig = go.Figure()
    for best, color, width in ((False, "#cccccc", 1), (True, BEST_COLOR, 3)):
        xs, ys = [], []
        for n in nodes:
            if n["parent"] is not None and n["best"] == best:
                parent = by_id[n["parent"]]
                xs += [parent["step"], n["step"], None]
                ys += [y[parent["id"]], y[n["id"]], None]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=color, width=width), hoverinfo="skip",
                                 name=_("best hypothesis") if best else _("extends"), showlegend=best))
    for fate, color in FATE_COLORS.items():
        group, name = [n for n in nodes if n["fate"] == fate], _(FATE_NAMES[fate])
        fig.add_trace(go.Scatter(
            x=[n["step"] for n in group], y=[y[n["id"]] for n in group], name=name,
            mode="markers" if fate == "pruned" else "markers+text",  # most nodes: their labels on hover only
            text=[n["label"] for n in group], textposition="middle right", textfont=dict(size=11),
            marker=dict(color=color, size=6 if fate == "pruned" else 9,
                        line=dict(width=[2 if n["best"] else 0 for n in group], color=BEST_COLOR)),
            customdata=[[n.get("logprob", 0.0), n.get("score", 0.0)] for n in group],
            hovertemplate=f"{node_hover}<extra>{name}</extra>", showlegend=bool(group)))
    fig.update_xaxes(title=_("step"), tickformat="d", dtick=1, showgrid=False, zeroline=False)
    fig.update_yaxes(visible=False, autorange="reversed")
    leaves = len(nodes) - len({n["parent"] for n in nodes if n["parent"] is not None})
    return compact_layout(fig, title, min(max(12 * leaves + 120, 300), 1200), background="white")  # 12 px a leaf: labels fit


PRESENTER_FONT_PX = 18  # the text of every figure in presenter mode (plotly's default is 12)


def presented(fig):
    """A copy of `fig` for a projector: titles, ticks, legends, subplot titles and values in cells all larger."""
    fig, size = go.Figure(fig), PRESENTER_FONT_PX
    fig.update_layout(font_size=size, title_font_size=round(size * 1.3), legend_font_size=size)
    fig.update_xaxes(tickfont_size=size, title_font_size=size)
    fig.update_yaxes(tickfont_size=size, title_font_size=size)
    fig.update_annotations(font_size=size)
    fig.for_each_trace(lambda trace: trace.update(textfont_size=size) if "textfont" in trace else None)
    return fig
