"""The attention explorer: every layer and head of the picked model on your input, one head large, head
statistics, rollout, switching heads off, and the captured weights as files."""
import re

import streamlit as st

from attnviz.app import figures, markdown, ui
from attnviz.app.head_view import MIN_WEIGHT, head_view
from attnviz.app.text import ROLLOUT_CAPTION, rollout_title
from attnviz.i18n import _, ngettext
from attnviz.interpret.ablation import ablation_summary, single_head_effects
from attnviz.interpret.export import npz_bytes, patterns_table
from attnviz.interpret.head_stats import STATS, head_stats_table, stat_matrix
from attnviz.interpret.head_types import HEAD_TYPES, bracket_table, head_type_table
from attnviz.interpret.input_run import ablate_input
from attnviz.interpret.patterns import attention_heads, patterns_of
from attnviz.interpret.rollout import attention_rollout

ui.sidebar(__file__)
st.title(_("Attention explorer"))
picked = ui.model_or_stop()
run = ui.input_run(picked)
ui.show_tokens(run)

if not run.kinds:
    st.info(_("{name} has no attention: its decoder sees the input only through the encoder's final state. Pick a "
              "Transformer or an RNN with attention in the sidebar, or compare them on **{rnn_page}**.").format(
                  name=picked.name, rnn_page=_("RNN vs attention")))
    st.stop()
kind = ui.attention_kind(run.kinds)
patterns = patterns_of(run.cache, kind)  # (L, H, Tq, Tk)
n_layers, n_heads = patterns.shape[:2]
query_labels, key_labels = run.labels(kind)
blocked = run.blocked(kind)
heads = attention_heads(picked.model)  # [(kind, layer, module, n_heads)]
module_of = {(k, layer): module for k, layer, module, _n_heads in heads}


def kind_name(kind):
    """The attention kind without its remark in brackets: "Decoder self-attention" (also "（" in Chinese)."""
    return re.split(r"\s*[(（]", _(ui.KIND_LABELS[kind]))[0]


@st.cache_data(max_entries=64, show_spinner=_("Running the test set with those heads off…"))
def test_set_effect(_picked, key, off):
    return ablation_summary(_picked.model, _picked.task().batches("test", 256), set(off))


@st.cache_data(max_entries=64, show_spinner=False)
def input_effect(_picked, key, _run, text, off):
    return ablate_input(_picked.model, _picked.task(), _run, set(off))


@st.cache_data(max_entries=16, show_spinner=_("Switching every head off in turn…"))
def head_ranking(_picked, key):
    batch = next(_picked.task().batches("test", 256))
    return single_head_effects(_picked.model, batch).sort_values("loss_change", ascending=False)


@st.cache_data(max_entries=16, show_spinner=_("Scoring every head on probe sequences…"))
def head_types(_picked, key):
    return head_type_table(_picked.model)


@st.cache_data(max_entries=16, show_spinner=_("Finding the bracket-matching heads…"))
def brackets(_picked, key):
    task = _picked.task()
    return bracket_table(_picked.model, task.tokenizer, [task.tokenizer.decode(block) for block in task.test[:32]])


table = head_stats_table(run.cache, run.src, run.tgt_in)
heads_tab, head_view_tab, stats_tab, rollout_tab, ablation_tab, export_tab = st.tabs(
    [_("Heads"), _("Head view"), _("Head statistics"), _("Rollout"), _("Switch heads off"), _("Export")])

with ablation_tab:  # drawn first in code: the grid marks the heads switched off here
    st.markdown(_("A head switched off contributes zeros to its layer's output. What does the model lose?"))
    off = st.multiselect(_("Heads to switch off"), [(k, layer, h) for k, layer, _module, n in heads for h in range(n)],
                         format_func=lambda t: _("{kind}, layer {layer} head {head}").format(
                             kind=kind_name(t[0]), layer=t[1], head=t[2]),
                         key="ablate", placeholder=_("Choose heads"))
    off_modules = tuple(sorted((module_of[k, layer], h) for k, layer, h in off))
    if off:
        effect = input_effect(picked, ui.model_key(picked), run, run.text, off_modules)
        before, after = st.columns(2)
        before.markdown(_("**Output, all heads on:** {output}").format(output=markdown.code(run.output)))
        after.markdown(ngettext("**Output, {count} head off:** {output}", "**Output, {count} heads off:** {output}",
                                len(off)).format(count=len(off), output=markdown.code(effect.output_after)))
        ui.plotly_chart(st, figures.probability_bars(
            picked.tokenizer.labels(run.tgt_out[0]),
            {_("all heads on"): effect.probs_before, _("heads off"): effect.probs_after},
            title=_("Probability of each output token (teacher-forced on the original output)")), key="ablate_probs")
        summary = test_set_effect(picked, ui.model_key(picked), off_modules)
        loss, accuracy = st.columns(2)
        loss.metric(_("Test-set loss"), f"{summary['loss_after']:.3f}", f"{summary['loss_change']:+.3f}",
                    delta_color="inverse", help=_("Before: {loss}, over {tokens} tokens").format(
                        loss=f"{summary['loss_before']:.3f}", tokens=summary["tokens"]))
        accuracy.metric(_("Test-set token accuracy"), f"{summary['accuracy_after']:.1%}",
                        f"{summary['accuracy_change']:+.1%}",
                        help=_("Before: {accuracy}").format(accuracy=f"{summary['accuracy_before']:.1%}"))
    if st.toggle(_("Rank every head: switch each off alone"), key="rank_heads"):
        st.dataframe(head_ranking(picked, ui.model_key(picked)).drop(columns="module"), hide_index=True,
                     key="ranking", column_config={"loss_change": st.column_config.NumberColumn(format="%+.4f"),
                                                   "accuracy_change": st.column_config.NumberColumn(format="%+.4f")})
        st.caption(_("On up to 256 test examples; the heads that matter most come first."))

with heads_tab:
    off_here = {(layer, h) for k, layer, h in off if k == kind}
    if n_layers * n_heads > 1:  # one head: the zoom below is all there is
        ui.head_grid(figures.attention_grid(
            patterns, masked=blocked, off=off_here, clickable=True,
            title=_("{layers} × {heads}: row = query, column = key; click a head to zoom").format(
                layers=ngettext("{count} layer", "{count} layers", n_layers).format(count=n_layers),
                heads=ngettext("{count} head", "{count} heads", n_heads).format(count=n_heads))), "grid")
    controls, zoom = st.columns([1, 3])
    layer, head = ui.layer_and_head(n_layers, n_heads, controls)
    stats = table[(table["kind"] == kind) & (table["layer"] == layer) & (table["head"] == head)].iloc[0]
    controls.caption(_("This head: entropy {entropy} nats, looks {distance} positions away on average, {previous} on "
                       "the previous token, {sink} on BOS/EOS, largest weight {max_weight} (see **{stats_tab}**).")
                     .format(entropy=f"{stats['entropy']:.2f}", distance=f"{stats['distance']:.1f}",
                             previous=f"{stats['previous_token']:.0%}", sink=f"{stats['sink']:.0%}",
                             max_weight=f"{stats['max_weight']:.2f}", stats_tab=_("Head statistics")))
    if kind != "encoder self":
        controls.caption(_("Decoder row t reads token t and predicts the token after it."))
    if kind == "decoder self":
        controls.caption(_("Grey cells are masked: a position may not look at later ones."))
    ui.plotly_chart(zoom, figures.attention_heatmap(
        patterns[layer, head], query_labels, key_labels, masked=blocked, width=700,
        title=_("{kind}: layer {layer}, head {head}").format(kind=_(ui.KIND_LABELS[kind]), layer=layer, head=head)),
        key="zoom")

with head_view_tab:  # bertviz's head view of the layer picked under Heads
    pick_heads, pick_focus = st.columns(2)
    shown_heads = pick_heads.multiselect(_("Heads"), range(n_heads), default=[head], key="head_view_heads",
                                         format_func=lambda h: _("head {head}").format(head=h),
                                         help=_("Each head in its own colour."))
    focus = pick_focus.selectbox(_("Focus on"), [None, *range(len(query_labels))], key="head_view_focus",
                                 format_func=lambda i: _("every token") if i is None else f"{i} {query_labels[i]}",
                                 help=_("Or click a token on the left."))
    ui.head_view_chart(head_view(patterns[layer], query_labels, key_labels, shown_heads, focus,
                                 title=_("{kind}: layer {layer}").format(kind=_(ui.KIND_LABELS[kind]), layer=layer)),
                       "head_view", "head_view_focus")
    st.caption(_("Each line joins a query (left) to a key (right); its opacity is the attention weight (lines under "
                 "{min_weight} are left out). Click a token on the left to see its lines alone.").format(
                     min_weight=MIN_WEIGHT))

with stats_tab:
    stat = st.selectbox(_("Statistic"), list(STATS), key="stat",
                        help="\n\n".join(f"**{name}**: {_(meaning)}" for name, meaning in STATS.items()))
    st.caption(_(STATS[stat]))
    ui.plotly_chart(st, figures.stat_heatmap(stat_matrix(table, kind, stat), stat, title=_("{stat} per head, {kind}")
                                             .format(stat=stat, kind=_(ui.KIND_LABELS[kind]).lower())), key="stat_map")
    st.dataframe(table.drop(columns="module"), hide_index=True, key="stats_table",
                 column_config={name: st.column_config.NumberColumn(help=_(meaning), format="%.3f")
                                for name, meaning in STATS.items()})
    st.caption(_("Every attention of the model, one row per head. Click a column header to sort."))
    if not picked.model.has_encoder:  # a language model: name what its heads do, on probes made for it
        st.subheader(_("Head types"))
        types = head_types(picked, ui.model_key(picked))
        head_type = st.radio(_("Head type"), list(HEAD_TYPES), key="head_type", horizontal=True)
        st.caption(_("{meaning} A head spreading its weight evenly scores {chance} here.").format(
            meaning=_(HEAD_TYPES[head_type]), chance=f"{types[head_type + ' chance'].iloc[0]:.2f}"))
        ui.plotly_chart(st, figures.stat_heatmap(types.pivot(index="layer", columns="head", values=head_type).to_numpy(),
                                             head_type, title=_("{stat} per head").format(stat=head_type)),
                        key="head_type_map")
        if picked.task().name == "code":
            st.dataframe(brackets(picked, ui.model_key(picked)), hide_index=True, key="brackets_table")
            st.caption(_("Bracket matching on the test split's code: weight from a closing bracket on its opening "
                         "one, and how often the opening one gets the head's largest weight."))

with rollout_tab:
    if kind == "cross":
        st.info(_("Rollout follows one self-attention stack; choose encoder or decoder self-attention above."))
    else:
        upto = st.slider(_("Up to layer"), 0, n_layers - 1, n_layers - 1, key="rollout_layer") if n_layers > 1 else 0
        raw, rolled = st.columns(2)
        ui.plotly_chart(raw, figures.attention_heatmap(patterns[upto].mean(0), query_labels, key_labels, masked=blocked,
                                                   title=_("Raw attention of layer {layer}, mean of its heads")
                                                   .format(layer=upto)),
                         key="raw")
        ui.plotly_chart(rolled, figures.attention_heatmap(attention_rollout(patterns)[upto], query_labels,
                                                      key_labels, masked=blocked, x_title=_("input token"),
                                                      y_title=_("position"), title=rollout_title(upto)),
                            key="rollout")
        st.caption(_(ROLLOUT_CAPTION))

with export_tab:
    st.markdown(_("Every figure has a camera button (top right, on hover) that saves it as a PNG or an SVG "
                  "(**{image_format}** in the sidebar); **{download_view}** saves the page's figures as one HTML "
                  "file. The attention weights behind them, every layer, head and kind, for this input:").format(
                      image_format=_("Figures save as"), download_view=_("Download this view")))
    csv, npz = st.columns(2)
    csv.download_button(_("Weights as CSV"), lambda: patterns_table(run.cache, run.src_labels, run.tgt_labels)
                        .to_csv(index=False), file_name=f"{picked.name}-attention.csv", mime="text/csv",
                        key="download_csv",
                        help=_("One row per weight: hook name, kind, layer, head, query, key, tokens."))
    npz.download_button(_("Tensors as NPZ"), lambda: npz_bytes(run.cache), file_name=f"{picked.name}-attention.npz",
                        mime="application/octet-stream", key="download_npz",
                        help=_("numpy.load(file)[hook name] is a (1, heads, queries, keys) array."))
