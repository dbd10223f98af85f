"""bertviz's head view as a plotly figure: the tokens in two columns, each query on the left joined to each key on
the right by a line whose opacity is the attention weight; several heads at once, each in its own colour.

Plotly draws one opacity per trace, so every line is a trace of its own (its `customdata` is [head, query, key]);
lines lighter than `MIN_WEIGHT` are left out, as they are all but invisible and would cost thousands of traces.
Focusing a token (a query, e.g. the one clicked) keeps its lines only, as hovering a token does in bertviz.
"""
import html

import plotly.graph_objects as go

from attnviz.app.figures import SERIES_COLORS, as_array, check_labels, compact_layout
from attnviz.i18n import _

MIN_WEIGHT = 0.01
ROW_PX = 22  # px per token row
QUERY_X, KEY_X = 0.0, 1.0


def head_color(head):
    return SERIES_COLORS[head % len(SERIES_COLORS)]


def head_view(weights, query_labels, key_labels, heads, focus=None, title="", min_weight=MIN_WEIGHT):
    """(H, Tq, Tk) weights of one layer as the head view of `heads` (head indices); `focus` is a query index or None.

    The token columns are the first two traces (queries, then keys), with `customdata` their positions, so a
    click on a token can be read back from a selection."""
    weights = as_array(weights, 3, "weights (heads, queries, keys)")
    _heads, Tq, Tk = weights.shape
    query_labels = check_labels(query_labels, Tq, "query_labels")
    key_labels = check_labels(key_labels, Tk, "key_labels")
    fig = go.Figure()
    for x, labels, side, hover, anchor in (
            (QUERY_X, query_labels, _("query"), _("query %{customdata} %{text}<br>click to focus"), "middle left"),
            (KEY_X, key_labels, _("key"), _("key %{customdata} %{text}"), "middle right")):
        text = [html.escape(label) for label in labels]  # plotly renders a few HTML tags in text
        fig.add_trace(go.Scatter(
            x=[x] * len(labels), y=list(range(len(labels))), mode="markers+text", text=text,
            textposition=anchor, customdata=list(range(len(labels))), name=side, showlegend=False,
            marker=dict(size=10, color=["#ff7f0e" if x == QUERY_X and i == focus else "#999"
                                        for i in range(len(labels))]),
            hovertemplate=f"{hover}<extra></extra>"))
    queries = range(Tq) if focus is None else [focus]
    for head in heads:
        shown_in_legend, name = False, _("head {head}").format(head=head)
        for i in queries:
            for j in range(Tk):
                weight = float(weights[head, i, j])
                if weight < min_weight:
                    continue
                fig.add_trace(go.Scatter(
                    x=[QUERY_X, KEY_X], y=[i, j], mode="lines", opacity=weight, customdata=[[head, i, j]] * 2,
                    line=dict(color=head_color(head), width=2), legendgroup=f"head {head}", name=name,
                    showlegend=not shown_in_legend, hoverinfo="skip"))
                shown_in_legend = True
    fig.update_xaxes(visible=False, range=[QUERY_X - 0.6, KEY_X + 0.6], fixedrange=True)
    fig.update_yaxes(visible=False, range=[max(Tq, Tk) - 0.5, -0.5], fixedrange=True)
    fig.update_layout(legend=dict(orientation="h", y=1.0, yanchor="bottom"), clickmode="event+select",
                      dragmode=False)
    return compact_layout(fig, title, ROW_PX * max(Tq, Tk) + 110, background="white")
