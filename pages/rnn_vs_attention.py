"""RNN vs attention: a Transformer, an LSTM with Bahdanau attention and a plain LSTM on the same task and data."""
import pandas as pd
import streamlit as st

from attnviz.app import figures, lesson_figures, ui
from attnviz.app.markdown import code, escape
from attnviz.app.tables import marked_html
from attnviz.app.train_view import status_text
from attnviz.app.text import BEYOND_TEXT, COST_NOTE, GROUPED_TEXT, LENGTH_CLAIM, LENGTH_SOURCES, MARKS_NOTE, trend
from attnviz.interpret.comparison import (accuracy_by_length, alignment, by_length, forward_cost, lengths_up_to,
                                          reference, trained_lengths, translate)
from attnviz.interpret.contenders import (LABELS, TASKS, Contender, checkpoint_name, curve, find_contenders, runs_of,
                                          start_runs, stop_runs, summary)
from attnviz.interpret.gradient_reach import text_gradient_by_distance
from attnviz.interpret.lstm_gates import is_lstm, text_lstm_gates
from attnviz.i18n import N_, _
from attnviz.training.device import pick_device

ui.sidebar(__file__)

COST_LENGTHS = [16, 32, 64, 128, 256, 512, 1024]
SOURCES = {"shipped": _("Shipped checkpoints"), "here": _("Train all three here")}


def shown_labels(by_label):
    """{model label: value} with each label in the session's language, as a figure's legend or a table shows it."""
    return {_(label): value for label, value in by_label.items()}


st.title(_("RNN vs attention"))
st.markdown(_(
    "Three models learn the same task from the same examples with the same seed: a **Transformer** "
    "(attention only), an **LSTM with Bahdanau attention** (Bahdanau et al., 2015), whose decoder scores every "
    "encoder state with its previous state and feeds the weighted sum into its next step, and a **plain LSTM** "
    "(Sutskever et al., 2014), whose decoder starts from the encoder's final state and sees nothing else of the "
    "input: one fixed-size vector for the whole of it."))
task_key = ui.choice(_("Task"), TASKS, "rnn_task", st.radio, "rnn_task", format_func=lambda key: _(TASKS[key]),
                     horizontal=True)
source = ui.choice(_("Models"), SOURCES, "rnn_source", st.radio, "rnn_source", format_func=SOURCES.get,
                   horizontal=True)


@ui.in_session_language  # a callback: the library's refusal in the session's language
def train_all_three(task_key, owner, seed, registry):
    try:
        start_runs(task_key, owner, seed, registry)
    except ValueError as error:  # a name being written right now, or holding someone else's model
        st.session_state["rnn_train_error"] = str(error)


owner, registry = "", ui.training_registry()
if source == "here":  # your browser's runs, saved under names with its short id (a reload finds them)
    owner = ui.browser_owner()
    runs = runs_of(task_key, owner, registry)
    running = any(not run.done for run in runs.values())
    left, right = st.columns([1, 3])
    seed = left.number_input(_("Seed"), 0, 9999, 0, key="rnn_seed", disabled=running)
    left.button(_("Train all three"), on_click=train_all_three, args=(task_key, owner, seed, registry),
                key="rnn_train", disabled=running, type="primary",
                help=_("Three runs of the presets, queued with everyone else's training runs, saved as {name} and "
                       "alike.").format(name=escape(checkpoint_name(task_key, "transformer", owner))))
    left.button(_("Stop"), on_click=stop_runs, args=(runs, owner), key="rnn_stop", disabled=not running)
    if "rnn_train_error" in st.session_state:
        st.error(escape(st.session_state.pop("rnn_train_error")))

    @st.fragment(run_every=1.0 if running else None)
    @ui.in_session_language  # a fragment's rerun skips ui.sidebar
    def progress():
        snapshots = {a: run.snapshot() for a, run in runs.items()}
        for architecture, snap in snapshots.items():
            exact = snap.metrics.get("exact_match")
            status = status_text(runs[architecture], snap.status, snap.queue_position)
            where = _("{status} on {node}").format(status=status, node=snap.node) if snap.node else status
            progress = _("{model}: {status}, step {step}/{steps}, validation exact match {exact}") \
                if exact is not None else _("{model}: {status}, step {step}/{steps}")
            st.progress(snap.step / snap.steps, text=progress.format(
                model=_(LABELS[architecture]), status=where, step=snap.step, steps=snap.steps,
                exact=f"{exact:.1%}" if exact is not None else ""))
            if snap.error:
                st.error(escape(snap.error))
        if running and all(run.done for run in runs.values()):
            st.rerun()

    with right:  # inside the fragment's own container, so each rerun replaces the bars
        progress()
contenders = {} if source == "here" and running else find_contenders(task_key, owner, ui.load_model, registry)
if source == "shipped" and len(contenders) < 3:
    st.info(_("Only {count} of the three shipped models of this task are here: choose **{train_here}**, or run "
              "`python -m attnviz train --preset {task}-lstm+bahdanau` (and -transformer, -lstm).").format(
                  count=len(contenders), train_here=SOURCES["here"], task=task_key))
if not contenders:
    st.stop()
task = next(iter(contenders.values())).task

st.header(_("Training side by side"))
table = pd.DataFrame(summary(contenders.values()))
table["model"] = table["model"].map(_)
heads = {"model": _("model"), "parameters": _("parameters"), "steps": _("steps"),  # summary()'s columns
         "train seconds": _("train seconds"), "ms per step": _("ms per step"), "val exact match": _("val exact match")}
formats = {"val exact match": "percent", "parameters": "localized", "steps": "localized", "ms per step": "%.1f",
           "train seconds": "%.1f"}
st.dataframe(table.rename(columns=heads), hide_index=True, key="rnn_summary",
             column_config={heads[column]: st.column_config.NumberColumn(format=number_format)
                            for column, number_format in formats.items()})
x = st.radio(_("Curves by"), ["step", "time"], key="rnn_curve_x", horizontal=True,
             format_func={"step": _("training step"), "time": _("seconds of training")}.get)
x_title = _("step") if x == "step" else _("seconds of training (evaluation excluded)")
loss_col, exact_col = st.columns(2)
ui.plotly_chart(loss_col, figures.curves([], shown_labels(curve(contenders.values(), "loss", x)), _("Training loss"),
                                         x_title, _("loss"), log_y=True), key="rnn_loss")
ui.plotly_chart(exact_col, figures.curves([], shown_labels(curve(contenders.values(), "exact_match", x)),
                                          _("Validation exact match"), x_title, _("exact match")), key="rnn_exact")


def same_input(text):
    """Every model's output with errors marked, then the alignments on the grid of one shared target."""
    expected = reference(task, text)
    st.markdown(_("Right answer: {answer}").format(answer=code(expected)) if expected else
                _("No right answer is known for this input: the outputs are not marked, and the alignments use the "
                  "Transformer's output as the target."))
    try:
        outputs = {label: translate(c.model, c.task.tokenizer, text) for label, c in contenders.items()}
        target = expected or outputs.get("Transformer") or next(iter(outputs.values()))
        grids = {label: alignment(c.model, c.task.tokenizer, text, target) for label, c in contenders.items()}
    except ValueError as error:
        return st.error(ui.message(error))
    for label, output in outputs.items():
        st.markdown(f"**{_(label)}**: {marked_html(output, expected)}", unsafe_allow_html=True)
    st.caption(_(MARKS_NOTE))
    left, right = st.columns(2)
    if LABELS["lstm+bahdanau"] in grids:
        patterns, src_labels, tgt_labels = grids[LABELS["lstm+bahdanau"]]
        ui.plotly_chart(left, figures.attention_heatmap(patterns["decoder.attention.hook_pattern"][0], tgt_labels,
                          src_labels, _("LSTM: Bahdanau weights a_ij"), x_title=_("source"), y_title=_("output")),
                          key="rnn_align_lstm")
    if "Transformer" in grids:
        cross, src_labels, tgt_labels = grids["Transformer"]
        name = right.selectbox(_("Transformer cross-attention"), list(cross), key="rnn_cross_layer",
                               format_func=lambda n: n.removesuffix(".hook_pattern"))
        head = right.selectbox(_("Head"), range(cross[name].shape[0]), key="rnn_head")
        ui.plotly_chart(right, figures.attention_heatmap(cross[name][head], tgt_labels, src_labels,
                           _("Transformer: head {head}").format(head=head), x_title=_("source"), y_title=_("output")),
                           key="rnn_align_transformer")
    st.caption(_("The plain LSTM has no alignment to show: its decoder reads one vector, not the source positions."))


st.header(_("The same input through every model"))
same_input(st.text_input(_("Input"), task.test[0][0], key=f"rnn_input_{task_key}",
                         help=_("Any text in the task's alphabet.")))


@st.cache_data(max_entries=32, show_spinner=_("Scoring every length…"))
def accuracy(_contender, key, lengths):
    return accuracy_by_length(_contender.model, _contender.task, lengths)


@st.cache_data(max_entries=32, show_spinner=_("Timing forward passes…"))
def cost(_config, config_text, lengths, device):
    return forward_cost(_config, lengths, device=device)


st.header(_("Accuracy by sequence length"))
length_key = st.radio(_("Models trained on"), list(TASKS), index=list(TASKS).index("reverse-long"),
                      format_func=lambda key: _(TASKS[key]), key="rnn_length_task", horizontal=True)
models = contenders if length_key == task_key else find_contenders(length_key, owner, ui.load_model, registry)
if owner and not models:
    models = find_contenders(length_key, load=ui.load_model)
    st.caption(_("You have not trained all three on this task here: these are the shipped models."))
if not models:
    st.info(_("No models of this task are here yet: pick another task, or train all three on it above."))
else:
    length_task = next(iter(models.values())).task
    trained, lengths = trained_lengths(length_task), None
    st.markdown(f"{_(LENGTH_CLAIM)} {_(BEYOND_TEXT) if trained else _(GROUPED_TEXT)}")
    if trained:
        longest = st.slider(_("Longest length"), trained[1] + 1, 130, trained[1] + 8, key=f"rnn_longest_{length_key}",
                            help=_("Trained on lengths {low}-{high}; lengths beyond the model's max_len are reported, "
                                   "not run.").format(low=trained[0], high=trained[1]))
        lengths = tuple(lengths_up_to(length_task, longest))
    rows = shown_labels({label: accuracy(c, c.key, lengths) for label, c in models.items()})
    fig = figures.curves([], by_length(rows, "exact_match"), _("Exact match by length"),
                         _("source length (tokens)"), _("exact match"))
    if trained:
        fig.add_vrect(x0=trained[0], x1=trained[1], fillcolor="green", opacity=0.08, line_width=0,
                      annotation_text=_("trained lengths"), annotation_position="bottom left")
        st.markdown(trend(rows, *trained))
    ui.plotly_chart(st, fig, key="rnn_by_length")
    notes = sorted({_("length {length}: {note}").format(length=r["length"], note=r["note"])
                    for rs in rows.values() for r in rs if r["note"]})
    st.caption("  \n".join(notes[:3] + [_(LENGTH_SOURCES)]))

st.header(_("Cost by sequence length, measured here"))
chosen = st.multiselect(_("Lengths"), COST_LENGTHS, COST_LENGTHS[:-1], key="rnn_cost_lengths")
device = str(pick_device("auto"))  # where training runs: the cost is measured there
costs = {_(label): cost(c.model.config, repr(c.model.config), tuple(sorted(chosen)), device)
         for label, c in contenders.items()}
charts = [("forward_ms", _("Forward pass (ms)"), 1), ("attention_weights", _("Attention weights computed"), 1),
          ("activation_bytes", _("Activations kept (MB)"), 2**-20)]
if any("peak_bytes" in row for rows in costs.values() for row in rows):  # CUDA: the allocator's own peak
    charts.append(("peak_bytes", _("GPU memory peak of the forward (MB)"), 2**-20))
for column, (metric, title, scale) in zip(st.columns(len(charts)), charts):
    fig = figures.curves([], by_length(costs, metric, scale), title, _("length"), log_y=True)
    ui.plotly_chart(column, fig.update_xaxes(type="log", tickvals=chosen).update_yaxes(dtick=1), key=f"rnn_cost_{metric}")
st.caption(_(COST_NOTE))



@st.cache_data(max_entries=32, show_spinner=_("Taking gradients…"))
def reach(_contender, key, text, target):
    return text_gradient_by_distance(_contender.model, _contender.task.tokenizer, text, target)


@st.cache_data(max_entries=32, show_spinner=False)
def gates(_contender, key, text):
    return text_lstm_gates(_contender.model, _contender.task.tokenizer, text)


PLAIN_RNN = N_("Plain RNN, no attention")  # a shipped tanh RNN of the task, where there is one: the gradient fades
st.header(_("Inside the recurrence: gradients and gates"))
st.subheader(_("How far back the gradient reaches"))
reach_text = st.session_state.get(f"rnn_input_{task_key}") or task.test[0][0]
try:
    first = contenders.get("Transformer") or next(iter(contenders.values()))
    reach_target = reference(task, reach_text) or translate(first.model, task.tokenizer, reach_text)
    plain = {info.name: info for info in ui.checkpoints() if info.shipped}.get(checkpoint_name(task_key, "rnn"))
    reaching = contenders | ({PLAIN_RNN: Contender.from_checkpoint(PLAIN_RNN, ui.load_model(plain))} if plain else {})
    frames = shown_labels({label: reach(c, c.key, reach_text, reach_target) for label, c in reaching.items()})
except ValueError as error:
    st.error(escape(str(error)))
else:
    st.markdown(_(
        "The gradient of the last output token ({token}, the decoder reading the right output before it) with "
        "respect to each input token's embedding, by the time steps between them. A recurrent model reaches an input "
        "only through every step in between: the gradient is a product of one Jacobian per step and tends to fade "
        "with the distance. Attention links every input to every output in one step.").format(
            token=code(reach_target[-1:]))
        + (" " + _("The plain tanh RNN (no attention, shipped for this task) shows the fading most clearly.")
           if plain else ""))
    scale = st.radio(_("Gradient"), ["gradient", "relative"], key="rnn_reach_scale", horizontal=True,
                     format_func={"gradient": _("as measured"), "relative": _("each model's largest = 1")}.get)
    ui.plotly_chart(st, lesson_figures.gradient_reach(frames, scale), key="rnn_reach")

lstms = {label: c for label, c in contenders.items() if is_lstm(c.model)}
if lstms:
    st.subheader(_("The LSTM's gates, step by step"))
    st.markdown(_(r"The encoder LSTM reading the same input, one column per token, one row per unit: the input gate "
                  r"$i_t$ (how much of the candidate $g_t$ is written), the forget gate $f_t$ (how much of the old "
                  r"cell is kept), the output gate $o_t$ (how much of the cell is shown) and the cell state "
                  r"$c_t = f_t \odot c_{t-1} + i_t \odot g_t$, computed from the module's own weights."))
    gate_model = st.radio(_("Model"), list(lstms), key="rnn_gates_model", horizontal=True, format_func=_)
    try:
        values, tokens = gates(lstms[gate_model], lstms[gate_model].key, reach_text)
    except ValueError as error:
        st.error(escape(str(error)))
    else:
        maps = lesson_figures.lstm_gate_maps({name: values[name] for name in ("input", "forget", "output", "cell")},
                                             tokens)
        ui.chart_rows(maps, (("input", "forget"), ("output", "cell")), "rnn_gate_")
