"""Shared Streamlit pieces: the page table, the sidebar (device badge, model picker), cached model loading.

The only module of attnviz that imports streamlit. Pages call these instead of repeating them, so the
model chosen in the sidebar is the same on every page and survives a reload (it is kept in the URL).
"""
import math
import re
import secrets
from functools import partial
from pathlib import Path
from typing import NamedTuple

import streamlit as st

from attnviz.app import figures
from attnviz.app.markdown import code, escape
from attnviz.app.owner import owner_token
from attnviz.app.standalone import view_html
from attnviz.data.stdlib import STDLIB_TASKS, differs_from_here
from attnviz.i18n import LANGUAGES, N_, _, preferred_language, use_language
from attnviz.interpret.decoding_plan import LIMITS, parse_number, sampling_settings
from attnviz.interpret.input_run import MAX_SHOWN_TOKENS, input_notes, run_input
from attnviz.training import checkpoint
from attnviz.training.device import describe, pick_device, set_threads_once
from attnviz.training.owners import owner_of, trained_by
from attnviz.training.runs import REGISTRY

ROOT = Path(__file__).resolve().parents[2]


class PageInfo(NamedTuple):
    file: str  # relative to the repository root, like app.py
    title: str
    icon: str  # an emoji: it ships with the browser (a :material/...: page icon is fetched from Google's servers)
    blurb: str  # one line for the landing page

    @property
    def url_path(self):
        """Where Streamlit serves the page: "" (the root) for app.py, "explorer" for pages/explorer.py."""
        return "" if self.file == HOME else Path(self.file).stem


HOME = "app.py"
APP_ICON = ROOT / "attnviz" / "app" / "icon.svg"  # the tab's icon ships with the app: Streamlit serves it itself
SIDEBAR_PX = 340  # wide enough for the longest model name in the picker ("reverse-long-lstm-bahdanau (reverse)")

# Every page of the app, in menu order. One line per page; a page shows up once its file exists.
PAGES = [
    PageInfo(HOME, N_("Home"), "🏠", N_("What attnviz is, the models at hand and the device.")),
    PageInfo("pages/course.py", N_("Course"), "🧭",
             N_("The story from sequences and the RNN's limits to the Transformer, one short lesson and live figure "
                "at a time.")),
    PageInfo("pages/explorer.py", N_("Attention explorer"), "🔍",
             N_("Every layer and head as a heatmap; head statistics, rollout, and switching heads off.")),
    PageInfo("pages/positional.py", N_("Positional encodings"), "🌊",
             N_("The sinusoidal table, how positions resemble each other, and what a model loses without them.")),
    PageInfo("pages/mechanics.py", N_("Attention mechanics"), "🧮",
             N_("One head by hand with real numbers: Q, K, V, QKᵀ/√d, the mask, softmax, times V.")),
    PageInfo("pages/decoding.py", N_("Step-by-step decoding"), "⏭️",
             N_("Greedy, beam search and sampling one token at a time, with the attention behind each choice.")),
    PageInfo("pages/train.py", N_("Train live"), "🏋️",
             N_("Train a small model and watch its loss fall and its attention pattern form.")),
    PageInfo("pages/rnn_vs_attention.py", N_("RNN vs attention"), "⚖️",
             N_("An LSTM with and without attention against a Transformer, on the same task.")),
    PageInfo("pages/pretrained.py", N_("Pretrained (MiniLM)"), "🎓",
             N_("A real pretrained model (MiniLM-L6) running in our own encoder: its heads on your sentence.")),
]


def available_pages():
    return [page for page in PAGES if (ROOT / page.file).exists()]


def page_of(script_path):
    """The `PageInfo` of a page file (the page's `__file__`)."""
    relative = Path(script_path).resolve().relative_to(ROOT).as_posix()
    for page in PAGES:
        if page.file == relative:
            return page
    raise ValueError(f"{relative} is not in attnviz.app.ui.PAGES: give it a line there (title, icon, blurb)")


# ---------------------------------------------------------------------------------------------
# Sidebar
#
# attnviz is a multipage app in Streamlit's pages-folder mode, used as Streamlit designs it: app.py is the Home
# page at the root URL, and every file in pages/ is a page served at /<its file name> (/explorer, /train).
# Streamlit picks that mode once per process, when the first session starts, because a `pages/` folder sits
# beside app.py; nothing in attnviz ever changes it, so the thirtieth session of a class is served exactly like
# the first, even when they all arrive at once. (`st.navigation` turns the mode off only when it is first
# called, so sessions arriving before that ran a page file alone, under a menu of file names.) Streamlit's own
# menu lists file names and is hidden (.streamlit/config.toml: client.showSidebarNavigation = false); instead
# every page begins with `ui.sidebar(__file__)`, which draws the menu of titles from PAGES, the device and the
# model picker.

# The choices every page keeps in the session and in the URL: {session key: query parameter}.
LINKED_STATE = {"model_choice": "model", "input_text": "text", "attention": "attention", "layer": "layer",
                "head": "head", "method": "method", "lesson": "lesson", "course_lesson": "lesson",
                "rnn_task": "rnn_task", "rnn_source": "rnn_source"}


def sidebar(script_path):
    """What every page starts with (`ui.sidebar(__file__)`): the session's language, the tab's title and icon, then
    in the sidebar the menu, the language, the device badge, the model picker, presenter mode and the figures'
    downloads. Returns the picked `CheckpointInfo` (None when there is none)."""
    page = page_of(script_path)
    use_language(session_language())
    present = presenting()
    st.set_page_config(page_title=_(page.title), page_icon=APP_ICON, layout="wide",
                       initial_sidebar_state="collapsed" if present else SIDEBAR_PX)
    arrive(page)
    set_threads_once()  # process-wide: cores - 1, so the server keeps a core for the browser sessions
    menu = st.sidebar.container(key="menu")
    language_picker()
    if not present:
        device_badge()
    picked = model_picker()
    carried = {"lang": st.session_state["language_choice"]} | ({"model": picked.name} if picked else {}) | \
        ({PRESENT_PARAM: "1"} if present else {})
    for other in available_pages():  # each link carries the model, the language and presenter mode, as a link does
        menu.page_link(other.file, label=_(other.title), icon=other.icon, query_params=carried)
    presenter_toggle()
    view_download(page)
    return picked


def session_language():
    """This session's language: the one picked before, else ?lang= (a shared link), else the browser's preference
    (navigator.language, then the Accept-Language header), else English."""
    if st.session_state.get("language_choice") not in LANGUAGES:
        wanted = st.query_params.get("lang")
        st.session_state["language_choice"] = wanted if wanted in LANGUAGES else preferred_language(
            st.context.locale or st.context.headers.get("Accept-Language"))
    return st.session_state["language_choice"]


def _keep_picked_language():
    st.session_state["language_choice"] = st.session_state["language"]


def language_picker():
    """English or 简体中文, kept in the URL as ?lang= (the page reruns in the new language at once)."""
    st.session_state["language"] = st.session_state["language_choice"]  # a widget's own state ends with its page
    language = st.sidebar.selectbox("Language · 语言", list(LANGUAGES), key="language", format_func=LANGUAGES.get,
                                    on_change=_keep_picked_language)
    st.query_params["lang"] = language
    return language


def arrive(page):
    """On a page's first run after another page, the link that led here wins: each `LINKED_STATE` choice its URL
    names is forgotten by the session, so the page reads it from the URL (a lesson's "open the full page" link
    opens the page at the lesson's model, input, attention, layer and head). A rerun of the same page keeps the
    session's choices; the menu's links name only the model the session already has."""
    if st.session_state.get("page_shown") == page.file:
        return
    st.session_state["page_shown"] = page.file
    for key, param in LINKED_STATE.items():
        if param in st.query_params:
            st.session_state.pop(key, None)
            st.session_state.pop(f"{key}_kept", None)  # the copy a `carried_choice` keeps beside its widget


def device_badge():
    """Which device training will use: CUDA, then Apple MPS, then the CPU."""
    device = pick_device("auto")
    color = {"cuda": "green", "mps": "violet"}.get(device.type, "gray")
    st.sidebar.caption(":material/memory: " + _("Trains on {device}").format(device=f":{color}[**{describe(device)}**]"))
    return device


def checkpoints():
    """Every checkpoint (`CheckpointInfo` list), read again only when a checkpoint folder changes.

    Reading every meta.json costs most of a rerun; a save renames its folder into place, which changes
    the folder's modification time, so a new model still shows at once."""
    folders = (checkpoint.SHIPPED_DIR, checkpoint.USER_DIR)
    return _checkpoints(tuple((str(d), d.stat().st_mtime_ns if d.exists() else 0) for d in folders))


@st.cache_resource(max_entries=4, show_spinner=False)
def _checkpoints(folder_stamps):
    return checkpoint.list_checkpoints()


def _keep_picked_model():
    st.session_state["model_choice"] = st.session_state["model"]


def model_picker():
    """Choose a checkpoint (shipped or your own); shared by all pages and kept in the URL as ?model=NAME.

    Returns the chosen `CheckpointInfo`, or None when there is no model yet.
    """
    infos = {info.name: info for info in checkpoints()}
    if not infos:
        st.session_state.pop("model_info", None)
        st.sidebar.info(_("No trained model yet: train one on **Train live** or with `python -m attnviz train`."))
        return None
    if st.session_state.get("model_choice") not in infos:  # first visit, a shared link, or the model was deleted
        wanted = st.query_params.get("model")
        st.session_state["model_choice"] = wanted if wanted in infos else default_model(infos.values())
    st.session_state["model"] = st.session_state["model_choice"]  # a widget's own state ends with its page
    owner = browser_owner()
    name = st.sidebar.selectbox(_("Model"), list(infos), key="model", format_func=lambda n: model_label(infos[n], owner),
                                on_change=_keep_picked_model,
                                help=_("Every page uses this model. Shipped models come with attnviz; "
                                       "yours were trained here."))
    st.query_params["model"] = name
    st.session_state["model_info"] = infos[name]
    return infos[name]


def selected_model():
    """The `Checkpoint` picked in the sidebar (loaded and cached), or None when there is no model yet."""
    info = st.session_state.get("model_info")
    return load_model(info) if info else None


def default_model(infos):
    """A first-time visitor starts on a Transformer (every page has attention to show), shipped before yours."""
    ranked = sorted(infos, key=lambda info: (info.meta.get("architecture") != "transformer", not info.shipped))
    return ranked[0].name


def model_label(info, owner):
    """'NAME (task)' for a shipped model, 'NAME (task, yours)' for one `owner` trained, else 'NAME (task, by WHO)'."""
    task = (info.meta.get("task") or {}).get("name", "?")
    whose = "" if info.shipped else _(", yours") if owner_of(info.meta) == owner else \
        _(", by {owner}").format(owner=trained_by(info.meta))
    return f"{info.name} ({task}{whose})"


def browser_owner():
    """This browser's owner token (see attnviz.app.owner for why the XSRF cookie): the same after a reload and in
    every tab of the browser, never in a link. Without the cookie, a random token for this session."""
    return owner_token(st.context.cookies) or st.session_state.setdefault("owner_token", secrets.token_hex(16))


@st.cache_resource(max_entries=8, show_spinner="Loading the model…")
def _load(path, modified_ns):  # modified_ns: a model saved again under the same name is loaded afresh
    return checkpoint.load_checkpoint(path)


def load_model(info):
    """The `Checkpoint` behind a picker choice, cached for all sessions: read it, never modify it."""
    path = Path(info.path)
    return _load(str(path), path.stat().st_mtime_ns if path.exists() else 0)


@st.cache_resource
def training_registry():
    """The process-wide `RunRegistry` of training runs, kept by Streamlit: it outlives a reload of
    attnviz.training.runs after a source edit, so every page keeps finding (and capping) the same runs."""
    return REGISTRY


@st.cache_resource(show_spinner="Loading MiniLM…")
def minilm():
    """The pretrained MiniLM, loaded once per process and shared (its methods lock around the hooks)."""
    from attnviz.models import pretrained
    return pretrained.load_minilm()


def model_key(picked):
    """What names a loaded `Checkpoint` in `st.cache_data` keys (pass the checkpoint itself as `_picked`)."""
    path = Path(picked.path)
    return str(path), path.stat().st_mtime_ns if path.exists() else 0


# ---------------------------------------------------------------------------------------------
# What the attention pages share: the model or a message, the input text, choices kept in the URL

MAX_INPUT_CHARS = 1000  # the input travels in the URL; models read far fewer tokens anyway
KIND_LABELS = {"encoder self": "Encoder self-attention", "decoder self": "Decoder self-attention (causal)",
               "cross": "Cross-attention (decoder → encoder)"}


def model_or_stop():
    """The `Checkpoint` picked in the sidebar, or a note and the end of the page when there is none."""
    picked = selected_model()
    if picked is None:
        st.info("No model to look at yet: train one on **Train live**, or with `python -m attnviz train`.")
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
        st.error(f"{picked.name} does not record the task it was trained on, so there is no input to give it.")
        st.stop()
    if task.name in STDLIB_TASKS and (note := differs_from_here(picked.meta.get("python"))):
        st.info(note)
    return task


def choice(label, options, key, widget=st.selectbox, param=None, fallback=0, **kwargs):
    """A choice (`widget`: a selectbox, a radio, ...) kept in the session under `key` and, given `param`, in the
    URL as ?param=..., so a reload or a shared link restores it.

    A value the options do not hold (another model has fewer layers, heads or probes) falls back to the URL's value
    when the options hold that, else to options[fallback]; a link's value that is not among the options is said so."""
    options = list(options)
    if st.session_state.get(key) not in options:
        by_text = {str(option): option for option in options}
        wanted = st.query_params.get(param) if param else None
        if wanted is not None and wanted not in by_text and key not in st.session_state:  # a link's, not ours
            st.warning(f"The link asks for {param} {code(wanted)}, which is not one of the choices here: "
                       f"{code(options[fallback])} instead.", icon=":material/link_off:")
        st.session_state[key] = by_text.get(wanted, options[fallback])
    value = widget(label, options, key=key, **kwargs)
    if param:
        st.query_params[param] = str(value)
    return value


def _keep_choice(key):
    st.session_state[f"{key}_kept"] = st.session_state[key]


def carried_choice(label, options, key, widget, **kwargs):
    """A `choice` kept in the URL as ?key=... that also carries from page to page (explorer → mechanics →
    decoding): a widget's own state ends with the page that drew it, so its value is kept beside it, under
    key + "_kept", and handed to the widget of the same key on whichever page draws it next."""
    options = list(options)
    if st.session_state.get(f"{key}_kept") in options:
        st.session_state[key] = st.session_state[f"{key}_kept"]
    value = choice(label, options, key, widget, key, on_change=_keep_choice, args=(key,), **kwargs)
    st.session_state[f"{key}_kept"] = value
    return value


def attention_kind(kinds):
    """Encoder self-, decoder self- or cross-attention, among those the model has (kept in the URL and carried
    to the other pages)."""
    return carried_choice("Attention", kinds, "attention", st.radio, horizontal=True, format_func=KIND_LABELS.get)


def layer_and_head(n_layers, n_heads, where=st):
    """Layer and head pickers side by side (kept in the URL and carried to the other pages): (layer, head)."""
    left, right = where.columns(2)
    return (carried_choice("Layer", range(n_layers), "layer", left.selectbox),
            carried_choice("Head", range(n_heads), "head", right.selectbox))


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


def linked_slider(label, low, high, default, key, param, where=st, **kwargs):
    """A whole-number slider kept in the session (beside its widget, like `carried_choice`) and in the URL as
    ?param=..., so a reload or a shared link restores it; a value outside [low, high] is clamped to it."""
    value = st.session_state.get(f"{key}_kept")
    if value is None:
        try:
            value = int(st.query_params.get(param, default))
        except ValueError:  # not a number: a link typed by hand
            value = default
    st.session_state[key] = min(max(value, low), high)
    value = where.slider(label, low, high, key=key, on_change=_keep_choice, args=(key,), **kwargs)
    st.session_state[f"{key}_kept"] = value
    st.query_params[param] = str(value)
    return value


def example_input(task):
    """One of the task's own test inputs, the input until the user types one."""
    if not task.probes:
        return ""
    if task.kind == "seq2seq":
        return task.probes[0][0]
    words = task.tokenizer.decode(task.probes[0][:16]).split(" ")  # a block starts and ends mid-word
    return " ".join(words[1:-1] if len(words) > 2 else words).strip()


def linked_text(widget, label, box, kept, param, default, limit=MAX_INPUT_CHARS, **kwargs):
    """A text box (`widget`: st.text_input or st.text_area, keyed `box`) whose text is kept in the session under
    `kept` and in the URL as ?param=..., so it survives switching pages and travels with a shared link.

    Any length may be typed or pasted (a box with a limit would drop a longer paste without a word); the first
    `limit` characters are kept, and a page that reads fewer tokens cuts them with a warning."""
    if kept not in st.session_state:
        st.session_state[kept] = st.query_params.get(param, default)[:limit]
    st.session_state[box] = st.session_state[kept]  # a widget's own state ends with its page
    text = widget(label, key=box, on_change=_keep_text, args=(box, kept, limit), **kwargs)[:limit]
    st.query_params[param] = text
    return text


def _keep_text(box, kept, limit):
    st.session_state[kept] = st.session_state[box][:limit]


def input_text(task, label="Input"):
    """The input shared by every page (`linked_text`, ?text=). It starts as one of the task's test inputs."""
    default = example_input(task)
    if "input_text" in st.session_state and st.session_state["input_text"] == st.session_state.get("input_default"):
        st.session_state["input_text"] = default  # the last model's untouched example: this model's own instead
    st.session_state["input_default"] = default
    return linked_text(st.text_input, label, "input_box", "input_text", "text", default,
                       help="Shared by every page and kept in the link. Press Enter to apply.")


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


@st.cache_data(max_entries=64, show_spinner="Running the model…")
def _run_input(_picked, key, text, max_tokens, max_new_tokens):
    return run_input(_picked.model, _picked.task(), text, max_tokens, max_new_tokens)


def input_run(picked, label="Input", max_tokens=MAX_SHOWN_TOKENS, max_new_tokens=None):
    """The shared input box, then the picked model run on it (cached): an `InputRun`.

    Input the model cannot take shows why and ends the page; a cut or unknown characters show as warnings."""
    text = input_text(task_or_stop(picked), label)
    try:
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
        st.markdown(f"**Encoder reads** ({len(run.src_labels)} tokens): {chips(run.src_labels)}")
    st.markdown(f"**Decoder reads** ({len(run.tgt_labels)} tokens): {chips(run.tgt_labels)}  \n"
                f"**Output** (greedy decoding): {code(run.output)}")


DECODING_METHODS = {"greedy": "Greedy", "sample": "Sampling", "beam": "Beam search"}


def decoding_controls(vocab_size, room):
    """The decoding method and its settings in one row, all kept in the URL: (method, max new tokens, view, settings).

    `view` (temperature, top_k, top_p) reshapes the distribution shown; `settings` are the method's own arguments.
    A link's value that does not fit a widget falls back to its default, and a warning says so."""
    method = choice("Method", DECODING_METHODS, "method", st.radio, "method", horizontal=True,
                    format_func=DECODING_METHODS.get)
    limits = dict(LIMITS, top_k=(0, vocab_size), max_new=(1, room))
    defaults = dict(max_new=min(40, room), temperature=1.0, top_k=0, top_p=1.0, seed=0, width=3, length_penalty=0.0)
    own = {"sample": ["seed"], "beam": ["width", "length_penalty"]}.get(method, [])  # the method's own settings
    shown = ["max_new", "temperature", "top_k", "top_p", *own]
    for name in shown:
        _from_link(f"dec_{name}", name, *limits[name], defaults[name])
    st.session_state.dec_max_new = min(st.session_state.dec_max_new, room)
    limit, temperature_box, top_k_box, top_p_box, extra, extra2 = st.columns(6)
    max_new = limit.number_input("Max new tokens", 1, room, key="dec_max_new")
    temperature = temperature_box.slider("Temperature", *limits["temperature"], step=0.05, key="dec_temperature",
                                         help="Divides the scores before the softmax: below 1 sharpens, above 1 "
                                              "flattens.")
    top_k = top_k_box.number_input("Top-k (0: all)", *limits["top_k"], key="dec_top_k",
                                   help="Keep only the k most likely tokens.")
    top_p = top_p_box.slider("Top-p", *limits["top_p"], step=0.05, key="dec_top_p",
                             help="Keep the most likely tokens until their probability reaches p (nucleus sampling).")
    view = {name: value for name, value in sampling_settings(temperature, top_k, top_p, None).items() if name != "seed"}
    settings = {}
    if method == "sample":
        settings = {**view, "seed": extra.number_input("Seed", *limits["seed"], key="dec_seed")}
    elif method == "beam":
        width = extra.slider("Beam width", *limits["width"], key="dec_width")
        settings = dict(width=width, n_best=width, length_penalty=extra2.slider(
            "Length penalty", *limits["length_penalty"], step=0.1, key="dec_length_penalty",
            help="Hypotheses are ranked by log-prob / length^penalty: 0 ranks by log-prob, more favours longer ones."))
    for name in defaults:
        if name in shown:
            st.query_params[name] = str(st.session_state[f"dec_{name}"])
        elif name in st.query_params:
            del st.query_params[name]
    if method != "sample":
        st.caption(f"{DECODING_METHODS[method]} does not use temperature, top-k or top-p: they only redraw the "
                   "chart below.")
    return method, max_new, view, settings


def _from_link(key, param, low, high, default):
    """Give a widget's session key its value from the URL (?param=) when the session has none yet, else `default`;
    a value that is not a number or out of [low, high] falls back to `default` with a warning."""
    if key in st.session_state:
        return
    st.session_state[key] = default
    if param in st.query_params:
        try:
            st.session_state[key] = parse_number(st.query_params[param], param, low, high)
        except ValueError as error:
            st.warning(escape(f"The link's {error}: using {default}."))


# ---------------------------------------------------------------------------------------------
# Small widgets any page can use


def message(error):
    """An error's text as a sentence on the page, escaped (it may quote what the user typed): "line 2 of ..."
    becomes "Line 2 of ...", while a message that starts with a name ("d_model=64 is not possible", "'x' exists
    already") keeps it as it is spelled."""
    text = str(error)
    return escape(text[:1].upper() + text[1:] if re.match(r"[a-z]+ ", text) else text)


def linked_state(key, param):
    """A session value restored from, and kept in, the URL as ?param=... (a reload or a shared link finds it)."""
    if key not in st.session_state and param in st.query_params:
        st.session_state[key] = st.query_params[param]
    value = st.session_state.get(key)
    if value:
        st.query_params[param] = value
    return value


def number_inputs(fields, prefix, defaults, where=st, linked=False, per_row=None):
    """Number inputs side by side (in rows of `per_row`), one per field (`.key`, `.label`, `.step`, `.help`), keyed
    prefix + field.key. Returns ({field.key: value}, {field.key: a container under its input}): the page says there
    what is wrong with a value.

    The inputs have no bounds: Streamlit's bounds refuse a typed value in the browser and keep the last one, so the
    form would go on with a number the user no longer sees. Every value reaches the page, which checks it. A field
    the session has no value for starts at defaults[field.key], or with `linked` at the URL's ?<field.key>= when
    that is a number for the field (a link's value that is not is said so under the field); `linked` also keeps the
    value in the URL."""
    values, notes = {}, {}
    per_row = per_row or len(fields)
    columns = [column for i in range(0, len(fields), per_row) for column in where.columns(per_row)]
    for f, column in zip(fields, columns):
        key, whole = prefix + f.key, not isinstance(f.step, float)
        wanted = st.query_params.get(f.key) if linked else None
        if key not in st.session_state:
            value = _number(wanted, whole) if wanted is not None else None
            st.session_state[key] = defaults[f.key] if value is None else value
        values[f.key] = column.number_input(f.label, step=f.step, key=key, help=f.help or None,
                                            format=None if whole else "%g")
        notes[f.key] = column.container()
        if wanted is not None and _number(wanted, whole) is None:
            notes[f.key].warning(f"The link's {f.key} {code(wanted)} is not a {'whole ' if whole else ''}number: "
                                 f"{values[f.key]} instead.", icon=":material/link_off:")
        if linked:
            st.query_params[f.key] = str(values[f.key])
    return values, notes


MAX_WHOLE = 2**53 - 1  # what a number input can hold exactly (the browser's safe integers)


def _number(text, whole):
    """A URL value as the number a field holds (int for a whole-number field), or None when it is none."""
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value) or (whole and not (value.is_integer() and abs(value) <= MAX_WHOLE)):
        return None
    return int(value) if whole else value


def newest_slider(label, values, key, follow, source=None, **kwargs):
    """A select slider over a list that grows (say snapshots): it moves to the newest value when the list grows, or
    `source` (what it lists) changes, while `follow` is on, and when its value is gone."""
    grown = st.session_state.get(f"{key}_seen") != (source, len(values))
    st.session_state[f"{key}_seen"] = (source, len(values))
    if (follow and grown) or st.session_state.get(key) not in values:
        st.session_state[key] = values[-1]
    return st.select_slider(label, values, key=key, **kwargs)


def chart_rows(charts, rows, key_prefix):
    """Plotly figures ({name: figure}) in rows of columns, e.g. rows (("loss", "accuracy"), ("lr", "speed")); each
    chart's key is key_prefix + name."""
    for row in rows:
        for column, name in zip(st.columns(len(row)), row):
            plotly_chart(column, charts[name], key_prefix + name)


def table_or_caption(table, empty_note, **kwargs):
    """A dataframe without its index, or a caption when it has no rows."""
    if table.empty:
        st.caption(empty_note)
    else:
        st.dataframe(table, hide_index=True, **kwargs)


# ---------------------------------------------------------------------------------------------
# The course: any lesson of attnviz.app.course, drawn from its data


def lesson_picker(lessons):
    """The lesson to show, kept in the URL as ?lesson=slug (?lesson=3 opens the third and becomes its slug) and in
    the session, so the menu's link back to the course finds the learner's lesson."""
    by_slug = {lesson.slug: lesson for lesson in lessons}
    slugs = list(by_slug)
    wanted = st.query_params.get("lesson", "")
    if wanted.isdigit() and 1 <= int(wanted) <= len(slugs):
        st.query_params["lesson"] = slugs[int(wanted) - 1]
    if "lesson" not in st.session_state and "course_lesson" in st.session_state:  # a widget's state ends with its page
        st.session_state["lesson"] = st.session_state["course_lesson"]
    slug = st.session_state["course_lesson"] = choice(
        "Lesson", slugs, "lesson", param="lesson", format_func=lambda s: f"{slugs.index(s) + 1}. {by_slug[s].title}")
    return by_slug[slug]


@st.cache_data(max_entries=256, show_spinner="Computing the lesson's figure…")
def _lesson_figure(_lesson, slug, values):
    return _lesson.figure(dict(values))


def lesson_inputs(lesson):
    """The lesson's declared inputs in one row: {input key: value}. Kept in the session beyond the widgets' own
    state, which ends with the page, so a learner back from a full page finds the lesson as they left it."""
    values, kept = {}, st.session_state.setdefault("lesson_inputs", {})
    for column, field in zip(st.columns(len(lesson.inputs)) if lesson.inputs else [], lesson.inputs):
        key, help_text = f"lesson_{lesson.slug}_{field.key}", field.help or None
        st.session_state.setdefault(key, kept.get(key, field.default))
        if field.options:
            value = column.selectbox(field.label, list(field.options), format_func=field.options.get, key=key,
                                     help=help_text)
        elif isinstance(field.default, str):
            box = column.text_area if field.lines else column.text_input
            value = box(field.label, max_chars=MAX_INPUT_CHARS, key=key, help=help_text)
        else:
            value = column.number_input(field.label, field.low, field.high, step=field.step, key=key, help=help_text)
        values[field.key] = kept[key] = value
    return values


def _go_to_lesson(slug):
    st.session_state["lesson"] = slug


def show_lesson(lesson, lessons):
    """A lesson: its text and formula, its inputs, its live figure, "try this" with the answer on demand, the links
    to the full pages, and the previous and next lessons."""
    st.header(f"{lessons.index(lesson) + 1}. {lesson.title}")
    st.markdown(lesson.text)
    if lesson.formula:
        st.latex(lesson.formula)
    values = lesson_inputs(lesson)
    try:
        drawn = _lesson_figure(lesson, lesson.slug, tuple(sorted(values.items())))
    except (ValueError, ImportError) as error:  # input the models cannot take, or MiniLM not installed
        st.warning(escape(error))
    else:
        plotly_chart(st, drawn.figure, "lesson_figure")
        st.caption(drawn.caption)
    st.markdown(f"**Try this.** {lesson.try_this}")
    if st.toggle("Show the answer", key=f"lesson_{lesson.slug}_answer"):
        st.success(lesson.answer, icon=":material/lightbulb:")
    titles = {page.file: page for page in PAGES}
    for link in lesson.links(values):
        st.page_link(link.page, label=f"{link.label}: {titles[link.page].title}", icon=titles[link.page].icon,
                     query_params=link.params or None)
    index = lessons.index(lesson)
    back, forward = st.columns(2)
    if index > 0:
        back.button(f"← {lessons[index - 1].title}", key="lesson_back", on_click=_go_to_lesson,
                    args=(lessons[index - 1].slug,))
    if index + 1 < len(lessons):
        forward.button(f"{lessons[index + 1].title} →", key="lesson_next", on_click=_go_to_lesson,
                       args=(lessons[index + 1].slug,), type="primary")


# Figures: one toolbar for all, presenter mode, and the page's figures as one file

PRESENT_PARAM = "present"
IMAGE_FORMATS = {"png": "PNG", "svg": "SVG"}
PRESENTER_CSS = "<style>html { font-size: 22px; }</style>"  # Streamlit sizes its text in rem: all of it grows


def presenting():
    """Presenter mode, for a room looking at one screen: larger fonts in figures and text, fewer controls. On with
    the sidebar's toggle or a link with ?present=1; pages may read it to show less."""
    if "presenting" not in st.session_state:  # a new session: from the link
        st.session_state["presenting"] = st.query_params.get(PRESENT_PARAM) == "1"
    return st.session_state["presenting"]


def _keep_presenting():
    st.session_state["presenting"] = st.session_state["present_toggle"]


def presenter_toggle():
    """The sidebar's presenter switch; while on it is kept in the URL (?present=1) and the text is larger."""
    st.session_state["present_toggle"] = presenting()  # a widget's own state ends with its page
    on = st.sidebar.toggle("Presenter mode", key="present_toggle", on_change=_keep_presenting,
                           help="Larger fonts and fewer controls, for a room looking at one screen. "
                                "A link with ?present=1 opens in it.")
    if on:
        st.query_params[PRESENT_PARAM] = "1"
        st.html(PRESENTER_CSS)
    else:
        st.query_params.pop(PRESENT_PARAM, None)


def _keep_image_format():
    st.session_state["image_format"] = st.session_state["image_format_box"]


def view_download(page):
    """The sidebar's downloads: the format the camera button of every figure saves (PNG or SVG), and a standalone
    HTML file of the page's figures (interactive, plotly.js inside: it opens without a network)."""
    st.session_state["view_figures"] = shown = {}  # chart key -> figure, filled by `plotly_chart` as the page runs
    if presenting():
        return
    st.session_state["image_format_box"] = st.session_state.setdefault("image_format", "png")
    st.sidebar.segmented_control("Figures save as", list(IMAGE_FORMATS), key="image_format_box", required=True,
                                 format_func=IMAGE_FORMATS.get, on_change=_keep_image_format,
                                 help="What the camera button above each figure saves: PNG (an image) or SVG "
                                      "(vector graphics, for papers and slides).")
    link = "?" + "&".join(f"{name}={value}" for name, value in st.query_params.items())
    st.sidebar.download_button("Download this view", lambda: view_html(page.title, shown, link),
                               file_name=f"attnviz-{page.url_path or 'home'}.html", mime="text/html",
                               key="download_view", icon="⬇️", on_click="ignore",
                               help="Every figure of this page in one HTML file that works offline.")


def chart_config(key):
    """Plotly's configuration for every chart: the camera saves in the chosen format (at twice the size on screen,
    named after the chart), no plotly logo, and no toolbar at all in presenter mode."""
    return {"displaylogo": False, "displayModeBar": "hover" if not presenting() else False,
            "toImageButtonOptions": {"format": st.session_state.get("image_format", "png"), "filename": key,
                                     "scale": 2}}


def plotly_chart(where, fig, key, **kwargs):
    """Draw a plotly figure in `where` (st, a column, a container) the way every figure of the app is drawn:
    the shared toolbar (`chart_config`), presenter mode's sizes, at the figure's own width when it has one (square
    cells stay square), and remembered for "Download this view"."""
    if presenting():
        fig = figures.presented(fig)
    st.session_state.setdefault("view_figures", {})[key] = fig
    return where.plotly_chart(fig, key=key, config=chart_config(key),
                              width="content" if fig.layout.width else "stretch", **kwargs)
