"""What every page starts with, `ui.sidebar(__file__)`: the session's language, the tab's title and icon, and in the
sidebar the menu, the language picker, the device badge, the model picker, presenter mode and the figures' downloads.

attnviz is a multipage app in Streamlit's pages-folder mode, used as Streamlit designs it: app.py is the Home
page at the root URL, and every file in pages/ is a page served at /<its file name> (/explorer, /train).
Streamlit picks that mode once per process, when the first session starts, because a `pages/` folder sits
beside app.py; nothing in attnviz ever changes it, so the thirtieth session of a class is served exactly like
the first, even when they all arrive at once. (`st.navigation` turns the mode off only when it is first
called, so sessions arriving before that ran a page file alone, under a menu of file names.) Streamlit's own
menu lists file names and is hidden (.streamlit/config.toml: client.showSidebarNavigation = false); instead
every page begins with `ui.sidebar(__file__)`, which draws the menu of titles from PAGES, the device and the
model picker.
"""
import functools

import streamlit as st

from attnviz.app.ui.charts import PRESENT_PARAM, presenter_toggle, presenting, view_download
from attnviz.app.ui.models import model_picker
from attnviz.app.ui.page_table import APP_ICON, SIDEBAR_PX, available_pages, page_of
from attnviz.i18n import LANGUAGES, _, preferred_language, use_language
from attnviz.training.device import describe, pick_device, set_threads_once


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


def in_session_language(function):
    """`function` (a widget's callback, a fragment) run in the session's language: Streamlit runs a callback before
    the page and a fragment's rerun without it, each in a thread of its own, which starts in English."""
    @functools.wraps(function)
    def in_language(*args, **kwargs):
        use_language(session_language())
        return function(*args, **kwargs)
    return in_language


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
