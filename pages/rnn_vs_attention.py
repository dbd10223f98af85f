"""RNN vs attention: a Transformer, an LSTM with Bahdanau attention and a plain LSTM on the same task and data."""
import pandas as pd
import streamlit as st

from attnviz.app import figures, ui
from attnviz.app.tables import marked_html
from attnviz.app.text import BEYOND_TEXT, COST_NOTE, GROUPED_TEXT, LENGTH_CLAIM, LENGTH_SOURCES, MARKS_NOTE, trend
from attnviz.interpret.comparison import (accuracy_by_length, alignment, by_length, forward_cost, lengths_up_to,
                                          reference, trained_lengths, translate)
from attnviz.interpret.contenders import (LABELS, TASKS, checkpoint_name, curve, find_contenders, runs_of, session_id,
                                          start_runs, stop_runs, summary)
from attnviz.training.device import pick_device

ui.sidebar(__file__)

COST_LENGTHS = [16, 32, 64, 128, 256, 512, 1024]
SOURCES = {"shipped": "Shipped checkpoints", "here": "Train all three here"}

st.title("RNN vs attention")
st.markdown(
    "Three models learn the same task from the same examples with the same seed: a **Transformer** "
    "(attention only), an **LSTM with Bahdanau attention** (Bahdanau et al., 2015), whose decoder scores every "
    "encoder state with its previous state and feeds the weighted sum into its next step, and a **plain LSTM** "
    "(Sutskever et al., 2014), whose decoder starts from the encoder's final state and sees nothing else of the "
    "input: one fixed-size vector for the whole of it.")
task_key = ui.choice("Task", TASKS, "rnn_task", st.radio, "rnn_task", format_func=TASKS.get, horizontal=True)
source = ui.choice("Models", SOURCES, "rnn_source", st.radio, "rnn_source", format_func=SOURCES.get, horizontal=True)
owner, registry = "", ui.training_registry()
if source == "here":  # your runs are saved under names with this id, kept in the URL (a reload finds them)
    owner = st.session_state.setdefault("rnn_session", session_id(st.query_params.get("rnn_session")))
    st.query_params["rnn_session"] = owner
    runs = runs_of(task_key, owner, registry)
    running = any(not run.done for run in runs.values())
    left, right = st.columns([1, 3])
    seed = left.number_input("Seed", 0, 9999, 0, key="rnn_seed", disabled=running)
    left.button("Train all three", on_click=start_runs, args=(task_key, owner, seed, registry), key="rnn_train",
                disabled=running, type="primary", help="Three runs of the presets, queued with everyone else's "
                f"training runs, saved as {checkpoint_name(task_key, 'transformer', owner)} and alike.")
    left.button("Stop", on_click=stop_runs, args=(runs,), key="rnn_stop", disabled=not running)

    @st.fragment(run_every=1.0 if running else None)
    def progress():
        snapshots = {a: run.snapshot() for a, run in runs.items()}
        for architecture, snap in snapshots.items():
            exact = snap.metrics.get("exact_match")
            where = f"waiting, #{snap.queue_position} in the queue" if snap.queue_position else snap.status
            st.progress(snap.step / snap.steps, text=f"{LABELS[architecture]}: {where}, step {snap.step}/"
                        f"{snap.steps}" + (f", validation exact match {exact:.1%}" if exact is not None else ""))
            if snap.error:
                st.error(snap.error)
        if running and all(run.done for run in runs.values()):
            st.rerun()

    with right:  # inside the fragment's own container, so each rerun replaces the bars
        progress()
contenders = {} if source == "here" and running else find_contenders(task_key, owner, ui.load_model, registry)
if source == "shipped" and len(contenders) < 3:
    st.info(f"Only {len(contenders)} of the three shipped models of this task are here: choose **Train all three here"
            f"**, or run `python -m attnviz train --preset {task_key}-lstm+bahdanau` (and -transformer, -lstm).")
if not contenders:
    st.stop()
task = next(iter(contenders.values())).task

st.header("Training side by side")
st.dataframe(pd.DataFrame(summary(contenders.values())), hide_index=True, key="rnn_summary",
             column_config={"val exact match": st.column_config.NumberColumn(format="percent"),
                            **{n: st.column_config.NumberColumn(format="localized") for n in ("parameters", "steps")},
                            "ms per step": st.column_config.NumberColumn(format="%.1f"),
                            "train seconds": st.column_config.NumberColumn(format="%.1f")})
x = st.radio("Curves by", ["step", "time"], key="rnn_curve_x", horizontal=True,
             format_func={"step": "training step", "time": "seconds of training"}.get)
x_title = "step" if x == "step" else "seconds of training (evaluation excluded)"
loss_col, exact_col = st.columns(2)
ui.plotly_chart(loss_col, figures.curves([], curve(contenders.values(), "loss", x), "Training loss", x_title,
                                     "loss", log_y=True), key="rnn_loss")
ui.plotly_chart(exact_col, figures.curves([], curve(contenders.values(), "exact_match", x),
                                      "Validation exact match", x_title, "exact match"), key="rnn_exact")


def same_input(text):
    """Every model's output with errors marked, then the alignments on the grid of one shared target."""
    expected = reference(task, text)
    st.markdown(f"Right answer: `{expected}`" if expected else "No right answer is known for this input: the "
                "outputs are not marked, and the alignments use the Transformer's output as the target.")
    try:
        outputs = {label: translate(c.model, c.task.tokenizer, text) for label, c in contenders.items()}
        target = expected or outputs.get("Transformer") or next(iter(outputs.values()))
        grids = {label: alignment(c.model, c.task.tokenizer, text, target) for label, c in contenders.items()}
    except ValueError as error:
        return st.error(ui.message(error))
    for label, output in outputs.items():
        st.markdown(f"**{label}**: {marked_html(output, expected)}", unsafe_allow_html=True)
    st.caption(MARKS_NOTE)
    left, right = st.columns(2)
    if LABELS["lstm+bahdanau"] in grids:
        patterns, src_labels, tgt_labels = grids[LABELS["lstm+bahdanau"]]
        ui.plotly_chart(left, figures.attention_heatmap(patterns["decoder.attention.hook_pattern"][0], tgt_labels,
                          src_labels, "LSTM: Bahdanau weights a_ij", x_title="source", y_title="output"),
                          key="rnn_align_lstm")
    if "Transformer" in grids:
        cross, src_labels, tgt_labels = grids["Transformer"]
        name = right.selectbox("Transformer cross-attention", list(cross), key="rnn_cross_layer",
                               format_func=lambda n: n.removesuffix(".hook_pattern"))
        head = right.selectbox("Head", range(cross[name].shape[0]), key="rnn_head")
        ui.plotly_chart(right, figures.attention_heatmap(cross[name][head], tgt_labels, src_labels,
                           f"Transformer: head {head}", x_title="source", y_title="output"),
                           key="rnn_align_transformer")
    st.caption("The plain LSTM has no alignment to show: its decoder reads one vector, not the source positions.")


st.header("The same input through every model")
same_input(st.text_input("Input", task.test[0][0], key=f"rnn_input_{task_key}", help="Any text in the task's alphabet."))


@st.cache_data(max_entries=32, show_spinner="Scoring every length…")
def accuracy(_contender, key, lengths):
    return accuracy_by_length(_contender.model, _contender.task, lengths)


@st.cache_data(max_entries=32, show_spinner="Timing forward passes…")
def cost(_config, config_text, lengths, device):
    return forward_cost(_config, lengths, device=device)


st.header("Accuracy by sequence length")
length_key = st.radio("Models trained on", list(TASKS), index=list(TASKS).index("reverse-long"),
                      format_func=TASKS.get, key="rnn_length_task", horizontal=True)
models = contenders if length_key == task_key else find_contenders(length_key, owner, ui.load_model, registry)
if owner and not models:
    models = find_contenders(length_key, load=ui.load_model)
    st.caption("You have not trained all three on this task here: these are the shipped models.")
if not models:
    st.info("No models of this task are here yet: pick another task, or train all three on it above.")
else:
    length_task = next(iter(models.values())).task
    trained, lengths = trained_lengths(length_task), None
    st.markdown(f"{LENGTH_CLAIM} {BEYOND_TEXT if trained else GROUPED_TEXT}")
    if trained:
        longest = st.slider("Longest length", trained[1] + 1, 130, trained[1] + 8, key=f"rnn_longest_{length_key}",
                            help=f"Trained on lengths {trained[0]}-{trained[1]}; lengths beyond the model's max_len "
                                 "are reported, not run.")
        lengths = tuple(lengths_up_to(length_task, longest))
    rows = {label: accuracy(c, c.key, lengths) for label, c in models.items()}
    fig = figures.curves([], by_length(rows, "exact_match"), "Exact match by length",
                         "source length (tokens)", "exact match")
    if trained:
        fig.add_vrect(x0=trained[0], x1=trained[1], fillcolor="green", opacity=0.08, line_width=0,
                      annotation_text="trained lengths", annotation_position="bottom left")
        st.markdown(trend(rows, *trained))
    ui.plotly_chart(st, fig, key="rnn_by_length")
    notes = sorted({f"length {r['length']}: {r['note']}" for rs in rows.values() for r in rs if r["note"]})
    st.caption("  \n".join(notes[:3] + [LENGTH_SOURCES]))

st.header("Cost by sequence length, measured here")
chosen = st.multiselect("Lengths", COST_LENGTHS, COST_LENGTHS[:-1], key="rnn_cost_lengths")
device = str(pick_device("auto"))  # where training runs: the cost is measured there
costs = {label: cost(c.model.config, repr(c.model.config), tuple(sorted(chosen)), device)
         for label, c in contenders.items()}
charts = [("forward_ms", "Forward pass (ms)", 1), ("attention_weights", "Attention weights computed", 1),
          ("activation_bytes", "Activations kept (MB)", 2**-20)]
if any("peak_bytes" in row for rows in costs.values() for row in rows):  # CUDA: the allocator's own peak
    charts.append(("peak_bytes", "GPU memory peak of the forward (MB)", 2**-20))
for column, (metric, title, scale) in zip(st.columns(len(charts)), charts):
    fig = figures.curves([], by_length(costs, metric, scale), title, "length", log_y=True)
    ui.plotly_chart(column, fig.update_xaxes(type="log", tickvals=chosen).update_yaxes(dtick=1), key=f"rnn_cost_{metric}")
st.caption(COST_NOTE)
