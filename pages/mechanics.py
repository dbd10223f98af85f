"""Attention mechanics: one head of the picked model computed by hand, step by step, with its real numbers,
and checked against what the model itself computed."""
import streamlit as st

from attnviz.app import figures, lesson_figures, ui
from attnviz.app.text import MECHANICS_FORMULAS
from attnviz.i18n import N_, _
from attnviz.interpret.mechanics import MECHANICS_AXES, head_mechanics
from attnviz.interpret.patterns import attention_heads
from attnviz.interpret.scaling import dot_product_stats, model_dot_product_stats

ui.sidebar(__file__)

MAX_TOKENS = 12  # the numbers are written into the cells up to 12 x 12

STEPS = {  # step -> (title, what it means), translated where they are shown
    "X": (N_("Input X"), N_("What the attention layer reads: one row per query position (embeddings, or the "
                            "previous layer's output, after its layer norm).")),
    "X_kv": (N_("Keys' input"), N_("Cross-attention: keys and values come from the encoder's output.")),
    "W_Q": (N_("Query weights"), N_("This head's slice of the query projection.")),
    "W_K": (N_("Key weights"), N_("This head's slice of the key projection.")),
    "W_V": (N_("Value weights"), N_("This head's slice of the value projection.")),
    "Q": (N_("Queries"), N_("What each position is looking for.")),
    "K": (N_("Keys"), N_("What each position offers to be found by.")),
    "V": (N_("Values"), N_("What each position hands over when it is attended to.")),
    "QK^T": (N_("Scores"), N_("Dot product of every query with every key: large when they point the same way.")),
    "scaled": (N_("Scaled scores"), N_("Dividing by √d_k keeps the scores' spread independent of d_k, so the softmax "
                                       "does not saturate.")),
    "masked": (N_("Masked scores"),
               N_("Blocked keys get −∞ (grey): future positions under the causal mask, and padding.")),
    "weights": (N_("Attention weights"), N_("Softmax of each row: non-negative, summing to 1. This is the pattern "
                                            "the other pages show.")),
    "Z": (N_("Head output"), N_("Each row is a weighted average of the value rows.")),
    "concat": (N_("All heads, side by side"), N_("Every head's output, concatenated: back to d_model columns.")),
    "W_O": (N_("Output weights"), N_("The output projection mixes the heads.")),
    "output": (N_("Attention output"), N_("What the layer adds to the residual stream.")),
}
AXIS_NAMES = {"query": N_("query"), "key": N_("key")}  # MECHANICS_AXES' words; d_model and d_k are symbols
SIDE_BY_SIDE = (("X", "X_kv"), ("W_Q", "W_K", "W_V"), ("Q", "K", "V"))  # steps of the same kind, in one row

st.title(_("Attention mechanics"))
st.markdown(_(r"One head of the model in the sidebar, computed step by step from its own weights: "
              r"$\mathrm{softmax}\left(QK^\top/\sqrt{d_k} + M\right)V$, then all heads together through $W^O$."))
picked = ui.model_or_stop()
if picked.meta.get("architecture") == "rnn":
    st.info(_("{name} is a recurrent model: its attention (if any) is additive, not the scaled dot product this page "
              "takes apart. Pick a Transformer in the sidebar; **{rnn_page}** covers RNNs.").format(
                  name=picked.name, rnn_page=_("RNN vs attention")))
    st.stop()
run = ui.input_run(picked, _("Input (short: the numbers are shown for up to {count} tokens)").format(count=MAX_TOKENS),
                   MAX_TOKENS,
                   max_new_tokens=None if picked.model.has_encoder else 3)  # a language model: the prompt + 3
ui.show_tokens(run)

heads = attention_heads(picked.model)  # [(kind, layer, module, n_heads)]
kind = ui.attention_kind(run.kinds)
n_layers = 1 + max(layer for k, layer, _module, _n in heads if k == kind)
n_heads = next(n for k, _layer, _module, n in heads if k == kind)
layer, head = ui.layer_and_head(n_layers, n_heads)
module = next(m for k, l, m, _n in heads if (k, l) == (kind, layer))


@st.cache_data(max_entries=64, show_spinner=_("Computing the head by hand…"))
def mechanics(_picked, key, _run, text, module, head):
    return head_mechanics(_picked.model, lambda: _run.forward(_picked.model), module, head)


def stacked(latex):
    """A formula with its remarks on lines of their own, so it fits a narrow column."""
    lines = latex.replace(r" \text{", r" \\ \text{", 1).replace(r", \quad", r" \\")
    return r"\begin{gathered}" + lines + r"\end{gathered}"


result = mechanics(picked, ui.model_key(picked), run, run.text, module, head)
agree = max(result.weights_error, result.output_error) < 1e-4
verdict = (_("the weights computed here match what the model's hook {hook} captured for head {head}") if agree else
           _("the weights computed here do not match what the model's hook {hook} captured for head {head}"))
(st.success if agree else st.error)(
    _("**Check:** {verdict}: max |difference| = **{weights_error}**; the layer output against the module's own: "
      "max |difference| = **{output_error}** (float32 rounding is about 1e-7).").format(
          verdict=verdict.format(hook=f"`{module}.hook_pattern`", head=head),
          weights_error=f"{result.weights_error:.1e}", output_error=f"{result.output_error:.1e}"),
    icon=":material/check:" if agree else ":material/error:")

query_labels, key_labels = run.labels(kind)
axis_labels = {"query": query_labels, "key": key_labels}


def show_step(step, text, chart, height=None):
    """A step's name, shape, formula and meaning in `text`, its matrix as a heatmap in `chart`."""
    values, (title, meaning), (rows, cols) = result.steps[step], STEPS[step], MECHANICS_AXES[step]
    row_name, col_name = (_(AXIS_NAMES[axis]) if axis in AXIS_NAMES else axis for axis in (rows, cols))
    text.markdown(_("**{title}** ({shape})").format(title=_(title), shape=f"{values.shape[0]} × {values.shape[1]}"))
    text.latex(stacked(MECHANICS_FORMULAS[step]))
    meaning = _(meaning)
    if step == "masked" and not values.isinf().any():
        meaning = _("{meaning} Nothing is blocked here, so these are the scaled scores unchanged.").format(
            meaning=meaning)
    text.caption(meaning)
    name = f"{'A' if step == 'weights' else step}: {row_name} × {col_name}"  # the chart says what its axes are
    if step == "weights":
        fig = figures.attention_heatmap(values, query_labels, key_labels, masked=run.blocked(kind), title=name,
                                        x_title=col_name, y_title=row_name, show_values=True, width=620)
    else:
        fig = figures.matrix_heatmap(values, axis_labels.get(rows), axis_labels.get(cols), title=name,
                                     x_title=col_name, y_title=row_name, value_name=step, height=height,
                                     square=(rows, cols) == ("query", "key"), width=620)
    ui.plotly_chart(chart, fig, key=f"step_{step}")


for step in result.steps:
    row = [s for s in next((g for g in SIDE_BY_SIDE if step in g), (step,)) if s in result.steps]
    if len(row) == 1:
        show_step(step, *st.columns([1, 2]))
    elif step == row[0]:
        for text, chart, side_step in zip(st.columns(len(row)), st.columns(len(row)), row):  # charts aligned
            show_step(side_step, text, chart, height=420)

D_KS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


@st.cache_data(max_entries=16, show_spinner=_("Drawing random queries and keys…"))
def gaussian_stats(n_keys, seed):
    return dot_product_stats(D_KS, n_keys=n_keys, seed=seed)


@st.cache_data(max_entries=64, show_spinner=_("Measuring every head…"))
def own_stats(_picked, key, _run, text):
    return model_dot_product_stats(_picked.model, _run.src, _run.tgt_in)


st.header(_("Why divide by √d_k"))
st.markdown(_(r"For queries and keys with independent $N(0, 1)$ entries, $q\cdot k=\sum_{m=1}^{d_k} q_m k_m$ has "
              r"variance $d_k$: the scores spread like $\sqrt{d_k}$. A softmax over scores that far apart puts almost "
              r"all weight on one key, its entropy falls, and its gradient $\partial p_i/\partial s_j = "
              r"p_i(\delta_{ij} - p_j)$ goes to zero with it. Divided by $\sqrt{d_k}$, the scores keep variance 1 "
              r"for every $d_k$."))
keys_box, seed_box = st.columns(2)
n_keys = keys_box.slider(_("Keys per query"), 2, 64, 16, key="scaling_keys")
seed = seed_box.number_input(_("Seed"), 0, 9999, 0, key="scaling_seed", help=_("500 random queries per d_k."))
ui.chart_rows(lesson_figures.scaling_curves(gaussian_stats(n_keys, seed)), (("variance", "entropy", "gradient"),),
              "scaling_")
st.markdown(_("This model's own heads on the input above: the variance of their q·k, and the softmax with and "
              "without the division the model makes."))
MEASURES = {"variance": N_("variance"), "scaled variance": N_("scaled variance"), "entropy": N_("entropy"),
            "scaled entropy": N_("scaled entropy"), "max gradient": N_("max gradient"),
            "scaled max gradient": N_("scaled max gradient")}
st.dataframe(own_stats(picked, ui.model_key(picked), run, run.text), hide_index=True, key="scaling_model",
             column_config={"module": _("module"), "kind": _("attention"), "layer": _("layer"), "head": _("head")} |
             {c: st.column_config.NumberColumn(_(label), format="%.3g") for c, label in MEASURES.items()})
