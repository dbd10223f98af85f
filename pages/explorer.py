"""The attention explorer: every layer and head of the picked model on your input, one head large, head
statistics, rollout, switching heads off, and the captured weights as files."""
import streamlit as st

from attnviz.app import figures, markdown, ui
from attnviz.app.head_view import MIN_WEIGHT, head_view
from attnviz.app.text import ROLLOUT_CAPTION, rollout_title
from attnviz.interpret.ablation import ablation_summary, single_head_effects
from attnviz.interpret.export import npz_bytes, patterns_table
from attnviz.interpret.head_stats import STATS, head_stats_table, stat_matrix
from attnviz.interpret.head_types import HEAD_TYPES, bracket_table, head_type_table
from attnviz.interpret.input_run import ablate_input
from attnviz.interpret.patterns import attention_heads, patterns_of
from attnviz.interpret.rollout import attention_rollout

ui.sidebar(__file__)
st.title("Attention explorer")
picked = ui.model_or_stop()
run = ui.input_run(picked)
ui.show_tokens(run)

if not run.kinds:
    st.info(f"{picked.name} has no attention: its decoder sees the input only through the encoder's final state. "
            "Pick a Transformer or an RNN with attention in the sidebar, or compare them on **RNN vs attention**.")
    st.stop()
kind = ui.attention_kind(run.kinds)
patterns = patterns_of(run.cache, kind)  # (L, H, Tq, Tk)
n_layers, n_heads = patterns.shape[:2]
query_labels, key_labels = run.labels(kind)
blocked = run.blocked(kind)
heads = attention_heads(picked.model)  # [(kind, layer, module, n_heads)]
module_of = {(k, layer): module for k, layer, module, _ in heads}


@st.cache_data(max_entries=64, show_spinner="Running the test set with those heads off…")
def test_set_effect(_picked, key, off):
    return ablation_summary(_picked.model, _picked.task().batches("test", 256), set(off))


@st.cache_data(max_entries=64, show_spinner=False)
def input_effect(_picked, key, _run, text, off):
    return ablate_input(_picked.model, _picked.task(), _run, set(off))


@st.cache_data(max_entries=16, show_spinner="Switching every head off in turn…")
def head_ranking(_picked, key):
    batch = next(_picked.task().batches("test", 256))
    return single_head_effects(_picked.model, batch).sort_values("loss_change", ascending=False)


@st.cache_data(max_entries=16, show_spinner="Scoring every head on probe sequences…")
def head_types(_picked, key):
    return head_type_table(_picked.model)


@st.cache_data(max_entries=16, show_spinner="Finding the bracket-matching heads…")
def brackets(_picked, key):
    task = _picked.task()
    return bracket_table(_picked.model, task.tokenizer, [task.tokenizer.decode(block) for block in task.test[:32]])


table = head_stats_table(run.cache, run.src, run.tgt_in)
heads_tab, head_view_tab, stats_tab, rollout_tab, ablation_tab, export_tab = st.tabs(
    ["Heads", "Head view", "Head statistics", "Rollout", "Switch heads off", "Export"])

with ablation_tab:  # drawn first in code: the grid marks the heads switched off here
    st.markdown("A head switched off contributes zeros to its layer's output. What does the model lose?")
    off = st.multiselect("Heads to switch off", [(k, layer, h) for k, layer, _, n in heads for h in range(n)],
                         format_func=lambda t: f"{ui.KIND_LABELS[t[0]].split(' (')[0]}, layer {t[1]} head {t[2]}",
                         key="ablate", placeholder="Choose heads")
    off_modules = tuple(sorted((module_of[k, layer], h) for k, layer, h in off))
    if off:
        effect = input_effect(picked, ui.model_key(picked), run, run.text, off_modules)
        before, after = st.columns(2)
        before.markdown(f"**Output, all heads on:** {markdown.code(run.output)}")
        after.markdown(f"**Output, {len(off)} head{'s' if len(off) > 1 else ''} off:** {markdown.code(effect.output_after)}")
        ui.plotly_chart(st, figures.probability_bars(
            picked.tokenizer.labels(run.tgt_out[0]), {"all heads on": effect.probs_before, "heads off": effect.probs_after},
            title="Probability of each output token (teacher-forced on the original output)"), key="ablate_probs")
        summary = test_set_effect(picked, ui.model_key(picked), off_modules)
        loss, accuracy = st.columns(2)
        loss.metric("Test-set loss", f"{summary['loss_after']:.3f}", f"{summary['loss_change']:+.3f}",
                    delta_color="inverse", help=f"Before: {summary['loss_before']:.3f}, over {summary['tokens']} tokens")
        accuracy.metric("Test-set token accuracy", f"{summary['accuracy_after']:.1%}",
                        f"{summary['accuracy_change']:+.1%}", help=f"Before: {summary['accuracy_before']:.1%}")
    if st.toggle("Rank every head: switch each off alone", key="rank_heads"):
        st.dataframe(head_ranking(picked, ui.model_key(picked)).drop(columns="module"), hide_index=True,
                     key="ranking", column_config={"loss_change": st.column_config.NumberColumn(format="%+.4f"),
                                                   "accuracy_change": st.column_config.NumberColumn(format="%+.4f")})
        st.caption("On up to 256 test examples; the heads that matter most come first.")

with heads_tab:
    off_here = {(layer, h) for k, layer, h in off if k == kind}
    if n_layers * n_heads > 1:  # one head: the zoom below is all there is
        ui.head_grid(figures.attention_grid(
            patterns, masked=blocked, off=off_here, clickable=True,
            title=f"{n_layers} layer{'s' if n_layers > 1 else ''} × {n_heads} head{'s' if n_heads > 1 else ''}: "
                  "row = query, column = key; click a head to zoom"), "grid")
    controls, zoom = st.columns([1, 3])
    layer, head = ui.layer_and_head(n_layers, n_heads, controls)
    stats = table[(table["kind"] == kind) & (table["layer"] == layer) & (table["head"] == head)].iloc[0]
    controls.caption(f"This head: entropy {stats['entropy']:.2f} nats, looks {stats['distance']:.1f} positions away "
                     f"on average, {stats['previous_token']:.0%} on the previous token, {stats['sink']:.0%} on "
                     f"BOS/EOS, largest weight {stats['max_weight']:.2f} (see **Head statistics**).")
    if kind != "encoder self":
        controls.caption("Decoder row t reads token t and predicts the token after it.")
    if kind == "decoder self":
        controls.caption("Grey cells are masked: a position may not look at later ones.")
    ui.plotly_chart(zoom, figures.attention_heatmap(patterns[layer, head], query_labels, key_labels, masked=blocked,
                                                title=f"{ui.KIND_LABELS[kind]}: layer {layer}, head {head}", width=700),
                      key="zoom")

with head_view_tab:  # bertviz's head view of the layer picked under Heads
    pick_heads, pick_focus = st.columns(2)
    shown_heads = pick_heads.multiselect("Heads", range(n_heads), default=[head], key="head_view_heads",
                                         format_func=lambda h: f"head {h}", help="Each head in its own colour.")
    focus = pick_focus.selectbox("Focus on", [None, *range(len(query_labels))], key="head_view_focus",
                                 format_func=lambda i: "every token" if i is None else f"{i} {query_labels[i]}",
                                 help="Or click a token on the left.")
    ui.head_view_chart(head_view(patterns[layer], query_labels, key_labels, shown_heads, focus,
                                 title=f"{ui.KIND_LABELS[kind]}: layer {layer}"), "head_view", "head_view_focus")
    st.caption(f"Each line joins a query (left) to a key (right); its opacity is the attention weight (lines under "
               f"{MIN_WEIGHT} are left out). Click a token on the left to see its lines alone.")

with stats_tab:
    stat = st.selectbox("Statistic", list(STATS), key="stat",
                        help="\n\n".join(f"**{name}**: {meaning}" for name, meaning in STATS.items()))
    st.caption(STATS[stat])
    ui.plotly_chart(st, figures.stat_heatmap(stat_matrix(table, kind, stat), stat,
                                         title=f"{stat} per head, {ui.KIND_LABELS[kind].lower()}"), key="stat_map")
    st.dataframe(table.drop(columns="module"), hide_index=True, key="stats_table",
                 column_config={name: st.column_config.NumberColumn(help=meaning, format="%.3f")
                                for name, meaning in STATS.items()})
    st.caption("Every attention of the model, one row per head. Click a column header to sort.")
    if not picked.model.has_encoder:  # a language model: name what its heads do, on probes made for it
        st.subheader("Head types")
        types = head_types(picked, ui.model_key(picked))
        head_type = st.radio("Head type", list(HEAD_TYPES), key="head_type", horizontal=True)
        st.caption(f"{HEAD_TYPES[head_type]} A head spreading its weight evenly scores "
                   f"{types[head_type + ' chance'].iloc[0]:.2f} here.")
        ui.plotly_chart(st, figures.stat_heatmap(types.pivot(index="layer", columns="head", values=head_type).to_numpy(),
                                             head_type), key="head_type_map")
        if picked.task().name == "code":
            st.dataframe(brackets(picked, ui.model_key(picked)), hide_index=True, key="brackets_table")
            st.caption("Bracket matching on the test split's code: weight from a closing bracket on its opening one, "
                       "and how often the opening one gets the head's largest weight.")

with rollout_tab:
    if kind == "cross":
        st.info("Rollout follows one self-attention stack; choose encoder or decoder self-attention above.")
    else:
        upto = st.slider("Up to layer", 0, n_layers - 1, n_layers - 1, key="rollout_layer") if n_layers > 1 else 0
        raw, rolled = st.columns(2)
        ui.plotly_chart(raw, figures.attention_heatmap(patterns[upto].mean(0), query_labels, key_labels, masked=blocked,
                                                   title=f"Raw attention of layer {upto}, mean of its heads"),
                         key="raw")
        ui.plotly_chart(rolled, figures.attention_heatmap(attention_rollout(patterns)[upto], query_labels,
                                                      key_labels, masked=blocked, x_title="input token",
                                                      y_title="position", title=rollout_title(upto)),
                            key="rollout")
        st.caption(ROLLOUT_CAPTION)

with export_tab:
    st.markdown("Every figure has a camera button (top right, on hover) that saves it as a PNG or an SVG (**Figures "
                "save as** in the sidebar); **Download this view** saves the page's figures as one HTML file. "
                "The attention weights behind them, every layer, head and kind, for this input:")
    csv, npz = st.columns(2)
    csv.download_button("Weights as CSV", lambda: patterns_table(run.cache, run.src_labels, run.tgt_labels)
                        .to_csv(index=False), file_name=f"{picked.name}-attention.csv", mime="text/csv",
                        key="download_csv", help="One row per weight: hook name, kind, layer, head, query, key, tokens.")
    npz.download_button("Tensors as NPZ", lambda: npz_bytes(run.cache), file_name=f"{picked.name}-attention.npz",
                        mime="application/octet-stream", key="download_npz",
                        help="numpy.load(file)[hook name] is a (1, heads, queries, keys) array.")
