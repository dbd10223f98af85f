"""What the attention pages share: the model or a message, the task, the input text and its run, and the attention
kind, layer and head, kept in the URL and carried from page to page."""
from functools import partial

import streamlit as st

from attnviz.app.markdown import code, escape
from attnviz.app.ui.charts import plotly_chart
from attnviz.app.ui.models import model_key, selected_model
from attnviz.app.ui.widgets import carried_choice, linked_text, message
from attnviz.data.stdlib import STDLIB_TASKS, differs_from_here
from attnviz.i18n import N_, _, ngettext
from attnviz.interpret.input_run import MAX_SHOWN_TOKENS, input_notes, run_input


KIND_LABELS = {"encoder self": N_("Encoder self-attention"), "decoder self": N_("Decoder self-attention (causal)"),
               "cross": N_("Cross-attention (decoder → encoder)")}  # shown as _(KIND_LABELS[kind])


def model_or_stop():
    """The `Checkpoint` picked in the sidebar, or a note and the end of the page when there is none."""
    picked = selected_model()
    if picked is None:
        st.info(_("No model to look at yet: train one on **Train live**, or with `python -m attnviz train`."))
        st.stop()
    return picked


def task_or_stop(picked):
    """The task the picked model was trained on (its tokenizer and test set), or an error and the end of the page."""
    try:
        task = picked.task()
    except ValueError as error:
        st.error(message(error))
        st.stop()
    if task is None:
        st.error(_("{model} does not record the task it was trained on, so there is no input to give it.")
                 .format(model=escape(picked.name)))
        st.stop()
    if task.name in STDLIB_TASKS and (note := differs_from_here(picked.meta.get("python"))):
        st.info(note)
    return task


def attention_kind(kinds):
    """Encoder self-, decoder self- or cross-attention, among those the model has (kept in the URL and carried
    to the other pages)."""
    # labelled now, in the session's language: Streamlit may call a format_func outside the page's run
    labels = {kind: _(KIND_LABELS[kind]) for kind in kinds}
    return carried_choice(_("Attention"), kinds, "attention", st.radio, horizontal=True, format_func=labels.get)


def layer_and_head(n_layers, n_heads, where=st):
    """Layer and head pickers side by side (kept in the URL and carried to the other pages): (layer, head)."""
    left, right = where.columns(2)
    return (carried_choice(_("Layer"), range(n_layers), "layer", left.selectbox),
            carried_choice(_("Head"), range(n_heads), "head", right.selectbox))


def _zoom_clicked_head(key):
    points = st.session_state[key].selection.points
    if points and len(points[0].get("customdata") or ()) == 2:
        st.session_state["layer_kept"], st.session_state["head_kept"] = map(int, points[0]["customdata"])


def head_grid(figure, key, where=st):
    """An `attention_grid(..., clickable=True)` on which a click on a head picks it in `layer_and_head` (drawn
    after it): the zoom beside the grid shows that head."""
    plotly_chart(where, figure, key, on_select=partial(_zoom_clicked_head, key), selection_mode="points")


def _focus_clicked_token(key, focus_key):
    points = st.session_state[key].selection.points
    if points and points[0].get("curve_number") == 0:  # the query column (`head_view`'s first trace)
        st.session_state[focus_key] = int(points[0]["customdata"])


def head_view_chart(figure, key, focus_key):
    """A `head_view` figure on which a click on a query token focuses it (sets the widget keyed `focus_key`)."""
    plotly_chart(st, figure, key, on_select=partial(_focus_clicked_token, key, focus_key), selection_mode="points")


def example_input(task):
    """One of the task's own test inputs, the input until the user types one."""
    if not task.probes:
        return ""
    if task.kind == "seq2seq":
        return task.probes[0][0]
    words = task.tokenizer.decode(task.probes[0][:16]).split(" ")  # a block starts and ends mid-word
    return " ".join(words[1:-1] if len(words) > 2 else words).strip()


def input_text(task, label=None):
    """The input shared by every page (`linked_text`, ?text=), labelled `label` (a translated text; "Input" when
    None). It starts as one of the task's test inputs."""
    default = example_input(task)
    if "input_text" in st.session_state and st.session_state["input_text"] == st.session_state.get("input_default"):
        st.session_state["input_text"] = default  # the last model's untouched example: this model's own instead
    st.session_state["input_default"] = default
    return linked_text(st.text_input, label or _("Input"), "input_box", "input_text", "text", default,
                       help=_("Shared by every page and kept in the link. Press Enter to apply."))


def input_notes_or_stop(task, text):
    """The notes every page gives on an input (`input_notes`) as warnings; an input with nothing to read ends
    the page with its warning."""
    try:
        notes = input_notes(task, text)
    except ValueError as error:
        st.warning(escape(str(error)))
        st.stop()
    for note in notes:
        st.warning(escape(note))


@st.cache_data(max_entries=64, show_spinner=False)  # the spinner is `input_run`'s, in the session's language
def _run_input(_picked, key, text, max_tokens, max_new_tokens):
    return run_input(_picked.model, _picked.task(), text, max_tokens, max_new_tokens)


def input_run(picked, label=None, max_tokens=MAX_SHOWN_TOKENS, max_new_tokens=None):
    """The shared input box (`input_text`), then the picked model run on it (cached): an `InputRun`.

    Input the model cannot take shows why and ends the page; a cut or unknown characters show as warnings."""
    text = input_text(task_or_stop(picked), label)
    try:
        with st.spinner(_("Running the model…")):
            run = _run_input(picked, model_key(picked), text, max_tokens, max_new_tokens)
    except ValueError as error:
        st.warning(message(error))
        st.stop()
    for note in run.notes:
        st.warning(escape(note))
    return run


def show_tokens(run):
    """The tokens the model reads, and its greedy output."""
    chips = lambda labels: " ".join(map(code, labels))
    if run.src_labels is not None:
        st.markdown(ngettext("**Encoder reads** ({n} token): {tokens}", "**Encoder reads** ({n} tokens): {tokens}",
                             len(run.src_labels)).format(n=len(run.src_labels), tokens=chips(run.src_labels)))
    decoder = ngettext("**Decoder reads** ({n} token): {tokens}", "**Decoder reads** ({n} tokens): {tokens}",
                       len(run.tgt_labels)).format(n=len(run.tgt_labels), tokens=chips(run.tgt_labels))
    output = _("**Output** (greedy decoding): {output}").format(output=code(run.output))
    st.markdown(f"{decoder}  \n{output}")
