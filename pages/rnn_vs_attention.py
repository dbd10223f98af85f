"""RNN vs attention: a Transformer, an LSTM with Bahdanau attention and a plain LSTM on the same task and data."""
import html
import uuid

import pandas as pd
import streamlit as st

from attnviz import checkpoint, compare, figures, ui
from attnviz.presets import build_preset
from attnviz.train import TrainingRun

TASKS = {"reverse": "Reverse letters (abc → cba)", "dates": "Normalise dates (23 Nov 2026 → 2026-11-23)"}
COST_LENGTHS = [16, 32, 64, 128, 256, 512, 1024]
MARKS = {"ok": "", "wrong": "background:#f6b8b8", "extra": "background:#fcd9a8", "missing": "background:#ddd;color:#777"}

st.title("RNN vs attention")
st.markdown(
    "Three models learn the same task from the same examples with the same seed: a **Transformer** "
    "(attention only), an **LSTM with additive attention** (Bahdanau et al., 2015), whose decoder looks back "
    "at every encoder state, and a **plain LSTM**, whose decoder sees only the encoder's final state: one "
    "fixed-size vector for the whole input.")
task_name = st.radio("Task", list(TASKS), format_func=TASKS.get, key="rnn_task", horizontal=True)
source = st.radio("Models", ["shipped", "here"], key="rnn_source", horizontal=True,
                  format_func={"shipped": "Shipped checkpoints", "here": "Train all three here"}.get)


def shipped_contenders():
    infos = {info.name: info for info in checkpoint.list_checkpoints()}
    return {label: compare.Contender.from_checkpoint(label, ui.load_model(infos[name]))
            for architecture, label in compare.LABELS.items()
            if (name := compare.checkpoint_name(task_name, architecture)) in infos}


def start_runs(seed):
    owner = st.session_state.setdefault("rnn_owner", uuid.uuid4().hex[:8])
    runs = {}
    for architecture in compare.LABELS:
        task, model, config = build_preset(f"{task_name}-{architecture}", seed)
        runs[architecture] = TrainingRun(model, task, config, name=f"{task_name}-{architecture}-{owner}", owner=owner)
    st.session_state.setdefault("rnn_runs", {})[task_name] = {a: run.start() for a, run in runs.items()}


if source == "shipped":
    contenders = shipped_contenders()
    if len(contenders) < 3:
        st.info(f"Only {len(contenders)} of the three shipped {task_name} models are here: choose "
                "**Train all three here**, or train them with `python -m attnviz train --preset "
                f"{task_name}-lstm+attention` (and -transformer, -lstm).")
else:
    runs = st.session_state.get("rnn_runs", {}).get(task_name, {})
    running = any(not run.done for run in runs.values())
    left, right = st.columns([1, 3])
    seed = left.number_input("Seed", 0, 9999, 0, key="rnn_seed", disabled=running)
    left.button("Train all three", on_click=start_runs, args=(seed,), key="rnn_train", disabled=running,
                type="primary", help="Three runs of the presets, queued with everyone else's training runs.")
    left.button("Stop", on_click=lambda: [run.stop(0) for run in runs.values()], key="rnn_stop", disabled=not running)

    @st.fragment(run_every=1.0 if running else None)
    def progress():
        snapshots = {a: run.snapshot() for a, run in runs.items()}
        for architecture, snap in snapshots.items():
            exact = snap.metrics.get("exact_match")
            where = f"waiting, #{snap.queue_position} in the queue" if snap.queue_position else snap.status
            right.progress(snap.step / snap.steps, text=f"{compare.LABELS[architecture]}: {where}, step {snap.step}/"
                           f"{snap.steps}" + (f", validation exact match {exact:.0%}" if exact is not None else ""))
            if snap.error:
                right.error(snap.error)
        if running and all(s.status not in ("queued", "running") for s in snapshots.values()):
            st.rerun()

    progress()
    contenders = {} if running else {compare.LABELS[a]: compare.Contender.from_run(compare.LABELS[a], run)
                                     for a, run in runs.items()}
if not contenders:
    st.stop()
task = next(iter(contenders.values())).task

st.header("Training side by side")
st.dataframe(pd.DataFrame(compare.summary(contenders.values())), hide_index=True, key="rnn_summary",
             column_config={"val exact match": st.column_config.NumberColumn(format="percent"),
                            "ms per step": st.column_config.NumberColumn(format="%.1f"),
                            "train seconds": st.column_config.NumberColumn(format="%.1f")})
x = st.radio("Curves by", ["step", "time"], key="rnn_curve_x", horizontal=True,
             format_func={"step": "training step", "time": "seconds of training"}.get)
x_title = "step" if x == "step" else "seconds of training (evaluation excluded)"
loss_col, exact_col = st.columns(2)
loss_col.plotly_chart(figures.curves([], compare.curve(contenders.values(), "loss", x), "Training loss", x_title,
                                     "loss", log_y=True), key="rnn_loss")
exact_col.plotly_chart(figures.curves([], compare.curve(contenders.values(), "exact_match", x),
                                      "Validation exact match", x_title, "exact match"), key="rnn_exact")

def same_input(text):
    """Every model's output with errors marked, then the alignments on the grid of one shared target."""
    expected = compare.reference(task, text)
    st.markdown(f"Right answer: `{expected}`" if expected else "No right answer is known for this input: the "
                "outputs are not marked, and the alignments use the Transformer's output as the target.")
    try:
        outputs = {label: compare.translate(c.model, c.task.tokenizer, text) for label, c in contenders.items()}
        target = expected or outputs.get("Transformer") or next(iter(outputs.values()))
        grids = {label: compare.alignment(c.model, c.task.tokenizer, text, target) for label, c in contenders.items()}
    except ValueError as error:
        return st.error(str(error))
    for label, output in outputs.items():
        marks = compare.error_marks(output, expected) if expected else [(ch, "ok") for ch in output]
        spans = "".join(f'<span style="{MARKS[status]}">{html.escape(ch)}</span>' for ch, status in marks)
        st.markdown(f"**{label}**: <code>{spans}</code>", unsafe_allow_html=True)
    st.caption("Red: wrong character, orange: one too many, grey: missing.")
    left, right = st.columns(2)
    if "LSTM + attention" in grids:
        patterns, src_labels, tgt_labels = grids["LSTM + attention"]
        left.plotly_chart(figures.attention_heatmap(patterns["decoder.attention.hook_pattern"][0], tgt_labels,
                          src_labels, "LSTM + attention: Bahdanau weights", x_title="source", y_title="output"),
                          key="rnn_align_lstm")
    if "Transformer" in grids:
        cross, src_labels, tgt_labels = grids["Transformer"]
        name = right.selectbox("Transformer cross-attention", list(cross), key="rnn_cross_layer",
                               format_func=lambda n: n.removesuffix(".hook_pattern"))
        head = right.selectbox("Head", range(cross[name].shape[0]), key="rnn_head")
        right.plotly_chart(figures.attention_heatmap(cross[name][head], tgt_labels, src_labels,
                           f"Transformer: head {head}", x_title="source", y_title="output"),
                           key="rnn_align_transformer")
    st.caption("The plain LSTM has no alignment to show: its decoder reads one vector, not the source positions.")


st.header("The same input through every model")
same_input(st.text_input("Input", task.test[0][0], key=f"rnn_input_{task_name}", help="Any text in the task's alphabet."))


@st.cache_data(max_entries=32, show_spinner="Scoring every length…")
def accuracy(_contender, key, lengths):
    return compare.accuracy_by_length(_contender.model, _contender.task, lengths)


@st.cache_data(max_entries=32, show_spinner="Timing forward passes…")
def cost(_config, config_text, lengths):
    return compare.forward_cost(_config, lengths)


st.header("Accuracy by sequence length")
trained = compare.trained_lengths(task)
st.markdown(
    "Bahdanau et al. (2015) found that squeezing a whole sentence into one fixed-size vector gets worse as "
    "sentences get longer, and that attention fixes it. " + (
        "Here are our three models on fresh examples of every length, including lengths they never saw in "
        "training (outside the green band): there every model is on new ground, and the Transformer even meets "
        "positions it never saw." if trained else
        "Here the test set is grouped by the length of the source: all of these lengths occur in training."))
lengths = None
if trained:
    longest = st.slider("Longest length", trained[1] + 1, 130, 3 * trained[1], key="rnn_longest",
                        help=f"Trained on lengths {trained[0]}-{trained[1]}; lengths beyond the model's max_len "
                             "are reported, not run.")
    lengths = tuple(sorted({*range(2, longest + 1, max(1, longest // 16)), *trained, longest}))
rows = {label: accuracy(c, c.key, lengths) for label, c in contenders.items()}
fig = figures.curves([], compare.by_length(rows, "exact_match"), "Exact match by length", "source length (tokens)",
                     "exact match")
if trained:
    fig.add_vrect(x0=trained[0], x1=trained[1], fillcolor="green", opacity=0.08, line_width=0,
                  annotation_text="trained lengths")
st.plotly_chart(fig, key="rnn_by_length")
for note in sorted({f"length {r['length']}: {r['note']}" for rs in rows.values() for r in rs if r["note"]})[:3]:
    st.caption(note)

st.header("Cost by sequence length, measured here")
chosen = st.multiselect("Lengths", COST_LENGTHS, COST_LENGTHS[:-1], key="rnn_cost_lengths")
costs = {label: cost(c.model.config, repr(c.model.config), tuple(sorted(chosen))) for label, c in contenders.items()}
columns = st.columns(3)
for column, (metric, title, scale) in zip(columns, [("forward_ms", "Forward pass (ms)", 1),
                                                    ("attention_weights", "Attention weights computed", 1),
                                                    ("activation_bytes", "Activations kept for training (MB)", 2**-20)]):
    fig = figures.curves([], compare.by_length(costs, metric, scale), title, "length", log_y=True)
    column.plotly_chart(fig.update_xaxes(type="log", tickvals=chosen).update_yaxes(dtick=1), key=f"rnn_cost_{metric}")
st.caption(compare.COST_NOTE)
