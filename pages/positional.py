"""The positional-encoding lab: the sinusoidal table, how positions resemble each other, why an offset is a
rotation, the picked model's own encodings, and what the model loses without them."""
import streamlit as st

from attnviz.app import figures, markdown, ui
from attnviz.i18n import N_, _
from attnviz.interpret.positional import (positional_ablation_summary, positional_similarity, positional_tables,
                                          shift_check)
from attnviz.models.positional import sinusoidal_table

KINDS = {"sinusoidal": N_("sinusoidal"), "learned": N_("learned")}  # how a positional table was made
ABLATIONS = {"remove": N_("Positions removed"), "shuffle": N_("Positions shuffled")}  # the metric of each mode

ui.sidebar(__file__)
st.title(_("Positional encodings"))
st.markdown(_(r"""
Attention by itself ignores order: shuffle the tokens and every token gets the same mix of values, just
shuffled. So a Transformer *adds* a vector to each token's embedding that depends only on its position.
The original one is fixed, made of sines and cosines at wavelengths from $2\pi$ to $10000 \cdot 2\pi$:
"""))
st.latex(r"PE_{(pos,\,2i)} = \sin\!\left(pos / 10000^{2i/d_{model}}\right), \qquad "
         r"PE_{(pos,\,2i+1)} = \cos\!\left(pos / 10000^{2i/d_{model}}\right)")


def show_table(table, key, kind="sinusoidal"):
    """A (T, D) positional table as a heatmap, chosen dimensions as curves, and position-by-position similarity."""
    T, D = table.shape
    title = _("{positions} positions × {dimensions} dimensions").format(positions=T, dimensions=D)
    ui.plotly_chart(st, figures.positional_heatmap(table, title=title), key=f"{key}_table")
    curves, similarity = st.columns(2)
    with curves:
        dimensions = st.multiselect(_("Dimensions to plot"), range(D),
                                    sorted({0, 1} | {D * f // 16 * 2 for f in (1, 2, 3)}), key=f"{key}_dims",
                                    help=_("Low dimensions change fast with the position, high ones slowly."))
        lines = {_("dim {d}").format(d=d): table[:, d] for d in sorted(dimensions)}
        ui.plotly_chart(st, figures.curves(range(T), lines, title=_("Value along the positions"),
                                           x_title=_("position"), y_title=_("value")),
                        key=f"{key}_curves")
    with similarity:
        title = _("Cosine similarity of positions") if kind == "learned" else \
            _("PE(i) · PE(j): near positions look alike")
        similar = positional_similarity(table, kind == "learned")  # (T, T)
        ui.plotly_chart(st, figures.similarity_heatmap(similar, title=title, x_title=_("position j"),
                                                           y_title=_("position i")),
                        key=f"{key}_similarity")
    shift = ui.linked_slider(_("Offset k"), 1, min(T - 1, 50), min(3, T - 1), f"{key}_k", f"{key}_k",
                             help=_("Is there one matrix M_k with PE(pos + k) = M_k PE(pos) for every pos?"))
    matrix, error = shift_check(table, shift)
    formula, heatmap = st.columns([2, 3])
    formula.latex(r"PE(pos + k) = M_k \, PE(pos)")
    formula.markdown(_("For the sinusoidal table, $M_k$ rotates each (sin, cos) pair of dimensions by the angle "
                       "$k\\,\\omega_i$ and does not depend on the position: attending to *\"{shift} tokens back\"* "
                       "is one linear map. Over all {positions} positions:").format(shift=shift, positions=T - shift)
                     if kind == "sinusoidal" else
                     _("A learned table promises no such map: the rotation that is exact for sinusoids misses it by:"))
    formula.metric(f"max |PE(pos + {shift}) − M_{shift} PE(pos)|", f"{error:.1e}")
    ui.plotly_chart(heatmap, figures.matrix_heatmap(matrix, title=f"M_{shift}", x_title=_("dimension"),
                                                    y_title=_("dimension"), value_name="M_k", diverging=True,
                                                    show_values=D <= 12, square=True, width=560),
                    key=f"{key}_shift")


st.header(_("The sinusoidal table"))
d_model, length = st.columns(2)
D = ui.linked_slider("d_model", 2, 256, 64, "pe_d_model", "d_model", d_model, step=2)
T = ui.linked_slider(_("Positions"), 4, 256, 64, "pe_length", "positions", length)
show_table(sinusoidal_table(T, D), "pe")

st.header(_("The model's own encodings"))
picked = ui.model_or_stop()
tables = positional_tables(picked.model)
if not tables:
    st.info((_("{model} has no positional encoding: a recurrent network reads its tokens one after another, so "
               "order is built into how it works.") if picked.meta.get("architecture") == "rnn" else
             _("{model} has no positional encoding: this Transformer was built with `positional=\"none\"`; only the "
               "causal mask (if any) tells it order.")).format(model=markdown.escape(picked.name)))
    st.stop()
labels = {n: f"{n} ({_(KINDS[tables[n][0]])})" for n in tables}  # translated now, in this page run
name = ui.choice(_("Encoding"), tables, "pe_module", st.radio, "encoding", horizontal=True,
                 format_func=labels.get) if len(tables) > 1 else next(iter(tables))
kind, table = tables[name]
task = ui.task_or_stop(picked)
longest = max(task.max_src_len, task.max_tgt_len)
st.markdown(_("`{module}` is **sinusoidal**: the same formula as above.").format(module=name) if kind == "sinusoidal"
            else _("`{module}` is **learned**: a vector per position, trained with the model. Positions beyond the "
                   "longest training sequence ({longest} tokens) were never trained.").format(module=name,
                                                                                             longest=longest))
rows = ui.linked_slider(_("Positions to show"), min(4, len(table)), len(table), min(len(table), max(longest, 8)),
                        "pe_model_rows", "rows")
show_table(table[:rows], "model", kind)

st.subheader(_("What the model loses without them"))
st.markdown(_("Run the test set again with the positional encodings **removed** (every position gets nothing) or "
              "**shuffled** (each sequence's positions handed out in a random order), and compare."))


@st.cache_data(max_entries=16, show_spinner=_("Running the test set…"))
def experiment(_picked, key, mode):
    return positional_ablation_summary(_picked.model, _picked.task().batches("test", 256), mode)


if st.toggle(_("Run the experiment on the test set"), key="pe_experiment"):
    results = {mode: experiment(picked, ui.model_key(picked), mode) for mode in ("remove", "shuffle")}
    columns = st.columns(3)
    columns[0].metric(_("Token accuracy, as trained"), f"{results['remove']['accuracy_before']:.1%}")
    for column, (mode, result) in zip(columns[1:], results.items()):
        column.metric(_(ABLATIONS[mode]), f"{result['accuracy_after']:.1%}", f"{result['accuracy_change']:+.1%}",
                      help=_("Loss {before} → {after} over {tokens} test tokens").format(
                          before=f"{result['loss_before']:.3f}", after=f"{result['loss_after']:.3f}",
                          tokens=result["tokens"]))
