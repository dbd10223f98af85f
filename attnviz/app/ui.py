"""Shared Streamlit pieces: the page table, the sidebar (device badge, model picker), cached model loading.

The only module of attnviz that imports streamlit. Pages call these instead of repeating them, so the
model chosen in the sidebar is the same on every page and survives a reload (it is kept in the URL).
"""
import re
from pathlib import Path
from typing import NamedTuple

import streamlit as st

from attnviz.app import figures
from attnviz.app.markdown import code
from attnviz.app.standalone import view_html
from attnviz.data.stdlib import STDLIB_TASKS, differs_from_here
from attnviz.interpret.input_run import MAX_SHOWN_TOKENS, run_input
from attnviz.training import checkpoint
from attnviz.training.device import describe, pick_device, set_threads_once
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
    PageInfo(HOME, "Home", "🏠", "What attnviz is, the models at hand and the device."),
    PageInfo("pages/explorer.py", "Attention explorer", "🔍",
             "Every layer and head as a heatmap; head statistics, rollout, and switching heads off."),
    PageInfo("pages/positional.py", "Positional encodings", "🌊",
             "The sinusoidal table, how positions resemble each other, and what a model loses without them."),
    PageInfo("pages/mechanics.py", "Attention mechanics", "🧮",
             "One head by hand with real numbers: Q, K, V, QKᵀ/√d, the mask, softmax, times V."),
    PageInfo("pages/decoding.py", "Step-by-step decoding", "⏭️",
             "Greedy, beam search and sampling one token at a time, with the attention behind each choice."),
    PageInfo("pages/train.py", "Train live", "🏋️",
             "Train a small model and watch its loss fall and its attention pattern form."),
    PageInfo("pages/rnn_vs_attention.py", "RNN vs attention", "⚖️",
             "An LSTM with and without attention against a Transformer, on the same task."),
    PageInfo("pages/pretrained.py", "Pretrained (MiniLM)", "🎓",
             "A real pretrained model (MiniLM-L6) running in our own encoder: its heads on your sentence."),
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


def sidebar(script_path):
    """What every page starts with (`ui.sidebar(__file__)`): the tab's title and icon, then in the sidebar the
    menu, the device badge, the model picker, presenter mode and the figures' downloads. Returns the picked
    `CheckpointInfo` (None when there is none)."""
    page = page_of(script_path)
    present = presenting()
    st.set_page_config(page_title=page.title, page_icon=APP_ICON, layout="wide",
                       initial_sidebar_state="collapsed" if present else SIDEBAR_PX)
    set_threads_once()  # process-wide: cores - 1, so the server keeps a core for the browser sessions
    menu = st.sidebar.container(key="menu")
    if not present:
        device_badge()
    picked = model_picker()
    link = {"model": picked.name} if picked else {}
    for other in available_pages():  # each link carries the picked model and presenter mode, as a shared link does
        menu.page_link(other.file, label=other.title, icon=other.icon,
                       query_params=link | ({PRESENT_PARAM: "1"} if present else {}) or None)
    presenter_toggle()
    view_download(page)
    return picked


def device_badge():
    """Which device training will use: CUDA, then Apple MPS, then the CPU."""
    device = pick_device("auto")
    color = {"cuda": "green", "mps": "violet"}.get(device.type, "gray")
    st.sidebar.caption(f":material/memory: Trains on :{color}[**{describe(device)}**]")
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
        st.sidebar.info("No trained model yet: train one on **Train live** or with `python -m attnviz train`.")
        return None
    if st.session_state.get("model_choice") not in infos:  # first visit, a shared link, or the model was deleted
        wanted = st.query_params.get("model")
        st.session_state["model_choice"] = wanted if wanted in infos else default_model(infos.values())
    st.session_state["model"] = st.session_state["model_choice"]  # a widget's own state ends with its page
    name = st.sidebar.selectbox("Model", list(infos), key="model", format_func=lambda n: model_label(infos[n]),
                                on_change=_keep_picked_model,
                                help="Every page uses this model. Shipped models come with attnviz; "
                                     "yours were trained here.")
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


def model_label(info):
    task = (info.meta.get("task") or {}).get("name", "?")
    return f"{info.name} ({task}{'' if info.shipped else ', yours'})"


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
    when the options hold that, else to options[fallback]."""
    options = list(options)
    if st.session_state.get(key) not in options:
        by_text = {str(option): option for option in options}
        st.session_state[key] = by_text.get(st.query_params.get(param) if param else None, options[fallback])
    value = widget(label, options, key=key, **kwargs)
    if param:
        st.query_params[param] = str(value)
    return value


def attention_kind(kinds):
    """Encoder self-, decoder self- or cross-attention, among those the model has (kept in the URL)."""
    return choice("Attention", kinds, "attention", st.radio, "attention", horizontal=True, format_func=KIND_LABELS.get)


def layer_and_head(n_layers, n_heads, where=st):
    """Layer and head pickers side by side (kept in the URL): (layer, head)."""
    left, right = where.columns(2)
    return (choice("Layer", range(n_layers), "layer", left.selectbox, "layer"),
            choice("Head", range(n_heads), "head", right.selectbox, "head"))


def example_input(task):
    """One of the task's own test inputs, the input until the user types one."""
    if not task.probes:
        return ""
    if task.kind == "seq2seq":
        return task.probes[0][0]
    words = task.tokenizer.decode(task.probes[0][:16]).split(" ")  # a block starts and ends mid-word
    return " ".join(words[1:-1] if len(words) > 2 else words).strip()


def _keep_typed_text():
    st.session_state["input_text"] = st.session_state["input_box"]


def input_text(task, label="Input"):
    """The input shared by every page: kept in the session and in the URL (?text=), so it survives switching
    pages and travels with a shared link. It starts as one of the task's test inputs."""
    default = example_input(task)
    if "input_text" not in st.session_state:
        st.session_state["input_text"] = st.query_params.get("text", default)[:MAX_INPUT_CHARS]
    elif st.session_state["input_text"] == st.session_state.get("input_default"):
        st.session_state["input_text"] = default  # the last model's untouched example: this model's own instead
    st.session_state["input_default"] = default
    st.session_state["input_box"] = st.session_state["input_text"]  # a widget's own state ends with its page
    text = st.text_input(label, key="input_box", on_change=_keep_typed_text, max_chars=MAX_INPUT_CHARS,
                         help="Shared by every page and kept in the link. Press Enter to apply.")
    st.query_params["text"] = text
    return text


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
        st.warning(note)
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
    """The decoding method (kept in the URL) and its settings in one row: (method, max new tokens, view, settings).

    `view` (temperature, top_k, top_p) reshapes the distribution shown; `settings` are the method's own arguments."""
    method = choice("Method", DECODING_METHODS, "method", st.radio, "method", horizontal=True,
                        format_func=DECODING_METHODS.get)
    st.session_state.dec_max_new = min(st.session_state.get("dec_max_new", 40), room)
    limit, temperature_box, top_k_box, top_p_box, extra, extra2 = st.columns(6)
    max_new = limit.number_input("Max new tokens", 1, room, key="dec_max_new")
    temperature = temperature_box.slider("Temperature", 0.0, 2.0, 1.0, 0.05, key="dec_temperature",
                                         help="Divides the scores before the softmax: below 1 sharpens, above 1 "
                                              "flattens.")
    top_k = top_k_box.number_input("Top-k (0: all)", 0, vocab_size, 0, key="dec_top_k",
                                   help="Keep only the k most likely tokens.")
    top_p = top_p_box.slider("Top-p", 0.05, 1.0, 1.0, 0.05, key="dec_top_p",
                             help="Keep the most likely tokens until their probability reaches p (nucleus sampling).")
    view = dict(temperature=temperature, top_k=top_k or None, top_p=top_p if top_p < 1 else None)
    settings = {}
    if method == "sample":
        settings = {**view, "seed": extra.number_input("Seed", 0, 2**31 - 1, 0, key="dec_seed")}
    elif method == "beam":
        width = extra.slider("Beam width", 1, 6, 3, key="dec_width")
        settings = dict(width=width, n_best=width, length_penalty=extra2.slider(
            "Length penalty", 0.0, 2.0, 0.0, 0.1, key="dec_length_penalty",
            help="Hypotheses are ranked by log-prob / length^penalty: 0 ranks by log-prob, more favours longer ones."))
    if method != "sample":
        st.caption(f"{DECODING_METHODS[method]} does not use temperature, top-k or top-p: they only redraw the "
                   "chart below.")
    return method, max_new, view, settings


# ---------------------------------------------------------------------------------------------
# Small widgets any page can use


def message(error):
    """An error's text as a sentence on the page: "line 2 of ..." becomes "Line 2 of ...", while a message that
    starts with a name ("d_model=64 is not possible", "'x' exists already") keeps it as it is spelled."""
    text = str(error)
    return text[:1].upper() + text[1:] if re.match(r"[a-z]+ ", text) else text


def linked_state(key, param):
    """A session value restored from, and kept in, the URL as ?param=... (a reload or a shared link finds it)."""
    if key not in st.session_state and param in st.query_params:
        st.session_state[key] = st.query_params[param]
    value = st.session_state.get(key)
    if value:
        st.query_params[param] = value
    return value


def number_inputs(fields, prefix, where=st):
    """A row of number inputs, one per field (`.key`, `.label`, `.low`, `.high`, `.step`, `.help`) keyed
    prefix + field.key: {field.key: value}."""
    columns = where.columns(len(fields))
    return {f.key: column.number_input(f.label, f.low, f.high, step=f.step, key=prefix + f.key, help=f.help or None,
                                       format="%g" if isinstance(f.step, float) else None)
            for f, column in zip(fields, columns)}


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
