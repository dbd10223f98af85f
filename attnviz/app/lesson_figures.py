"""Figures of the course's topics (plotly, no streamlit), from what attnviz.interpret computes:

    gradient_reach(frames, column)     {label: gradient_by_distance frame} -> one line per model, log y
    lstm_gate_maps(gates, tokens)      lstm_gates dict -> {name: heatmap of units x time steps, tokens on the x axis}
    scaling_curves(stats)              dot_product_stats frame -> {"variance", "entropy", "gradient": curves by d_k}
    padded_batch(check)                PaddingCheck -> the batch's tokens in a grid, PAD cells marked by the mask

Token labels are user text: they are HTML-escaped here, since plotly renders a few tags in labels. Titles, axes,
hovers and legend names are in the session's language (attnviz.i18n).
"""
import html

import numpy as np
import plotly.graph_objects as go

from attnviz.app.figures import MASKED_COLOR, compact_layout, curves, label_axis, matrix_heatmap
from attnviz.i18n import N_, _

# {name: (what it is, its symbol)}: a map is titled "Forget gate f_t" and its values are called f_t
GATES = {"input": (N_("Input gate"), "i_t"), "forget": (N_("Forget gate"), "f_t"),
         "output": (N_("Output gate"), "o_t"), "candidate": (N_("Candidate"), "g_t"),
         "cell": (N_("Cell state"), "c_t"), "hidden": (N_("Hidden state"), "h_t")}
REAL_COLOR = "#c6dbef"  # a real token in the padded batch
BOUNDED = {"input", "forget", "output"}  # sigmoids: 0..1 on one fixed scale, so gates compare by eye


def escaped(labels):
    return [html.escape(str(label), quote=False) for label in labels]


def gradient_reach(frames, column="gradient"):
    """Gradient of the last output w.r.t. each source embedding, by distance in time steps; one line per model."""
    series = {html.escape(label, quote=False): (frame["distance"].to_numpy(), frame[column].to_numpy())
              for label, frame in frames.items()}
    title = _("Gradient reaching each input, by distance (largest = 1)") if column == "relative" \
        else _("Gradient reaching each input, by distance")
    fig = curves([], series, title, _("distance from the last output (time steps)"),
                 _("‖∂ output / ∂ input embedding‖"), log_y=True)
    return fig.update_traces(mode="lines+markers")


def lstm_gate_maps(gates, tokens):
    """{name: heatmap}: each of `gates` (T, H) as units (rows) x time steps (columns, labelled by the tokens)."""
    maps = {}
    for name, values in gates.items():
        bounded = name in BOUNDED
        words, symbol = GATES.get(name, (name, name))
        maps[name] = matrix_heatmap(np.asarray(values).T, None, escaped(tokens),
                                    f"{_(words)} {symbol}" if name in GATES else name,
                                    x_title=_("time step (token read)"), y_title=_("unit"), value_name=symbol,
                                    diverging=not bounded, zmin=0.0 if bounded else None,
                                    zmax=1.0 if bounded else None, show_values=False)
    return maps


def scaling_curves(stats):
    """{"variance", "entropy", "gradient"}: each statistic of `dot_product_stats` by d_k, raw and divided by √d_k."""
    d_k, closed_form = stats["d_k"].to_numpy(), _("closed form d_k")
    pairs = {"variance": (_("Variance of q·k"), "variance", {closed_form: stats["expected variance"]}),
             "entropy": (_("Softmax entropy (nats)"), "entropy", {}),
             "gradient": (_("Largest softmax gradient |∂p_i/∂s_j|"), "max gradient", {})}
    charts = {}
    for name, (title, column, extra) in pairs.items():
        series = {"q·k": stats[column].to_numpy(), "q·k / √d_k": stats[f"scaled {column}"].to_numpy(),
                  **{label: values.to_numpy() for label, values in extra.items()}}
        fig = curves(d_k, series, title, "d_k", log_y=name == "variance").update_traces(mode="lines+markers")
        fig.update_traces(selector=dict(name=closed_form), mode="lines", line=dict(dash="dash", color="#888"))
        charts[name] = fig.update_xaxes(type="log")
    return charts


def padded_batch(check):
    """The padded batch as a grid (one row per input, one column per position) with each token written in; the
    cell's value is the key-padding mask (1 = PAD, masked: grey; 0 = a real token: blue)."""
    mask = check.key_padding_mask.numpy().astype(float)  # (B, S)
    labels = [escaped(row) for row in check.src_labels]
    cell, pad, real = _("input {input}, position {position}: {token}"), _("PAD: masked"), _("a real token")
    hover = [[cell.format(input=b, position=s, token=labels[b][s]) + "<br>" + (pad if mask[b, s] else real)
              for s in range(mask.shape[1])] for b in range(mask.shape[0])]
    fig = go.Figure(go.Heatmap(z=mask, x=list(range(mask.shape[1])), y=list(range(mask.shape[0])), text=labels,
                               texttemplate="%{text}", customdata=hover, hovertemplate="%{customdata}<extra></extra>",
                               colorscale=[[0.0, REAL_COLOR], [1.0, MASKED_COLOR]], zmin=0.0, zmax=1.0,
                               showscale=False, xgap=2, ygap=2))
    fig.update_xaxes(label_axis(None, _("position")))
    fig.update_yaxes(label_axis([_("input {input}").format(input=b) for b in range(mask.shape[0])], ""),
                     autorange="reversed")
    return compact_layout(fig, _("The padded batch and its key-padding mask (grey = PAD, masked)"),
                          48 * mask.shape[0] + 110, background="white")
