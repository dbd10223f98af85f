"""Every figure is drawn the same way: one toolbar (PNG or SVG, as picked in the sidebar), presenter mode's larger
sizes, and remembered for "Download this view", a standalone HTML file of the page's figures."""
import streamlit as st

from attnviz.app import figures
from attnviz.app.standalone import view_html
from attnviz.i18n import _, current_language


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
    on = st.sidebar.toggle(_("Presenter mode"), key="present_toggle", on_change=_keep_presenting,
                           help=_("Larger fonts and fewer controls, for a room looking at one screen. "
                                  "A link with `?present=1` opens in it."))
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
    st.sidebar.segmented_control(_("Figures save as"), list(IMAGE_FORMATS), key="image_format_box", required=True,
                                 format_func=IMAGE_FORMATS.get, on_change=_keep_image_format,
                                 help=_("What the camera button above each figure saves: PNG (an image) or SVG "
                                        "(vector graphics, for papers and slides)."))
    link = "?" + "&".join(f"{name}={value}" for name, value in st.query_params.items())
    title = _(page.title)
    st.sidebar.download_button(_("Download this view"), lambda: view_html(title, shown, link),
                               file_name=f"attnviz-{page.url_path or 'home'}.html", mime="text/html",
                               key="download_view", icon="⬇️", on_click="ignore",
                               help=_("Every figure of this page in one HTML file that works offline."))


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


def shared_figures(key, build):
    """`build()` (a figure, or a dict of them) built once per `key` and language, and shared by every session.

    For figures that many tabs redraw unchanged: Train live redraws a run's curves every second or two in every
    tab watching it, and building plotly figures was most of a class server's work. `key` must name everything
    the figures show (e.g. the run and how many steps its history holds); the language is added, since figures
    hold translated words. Nothing may change a shared figure: `plotly_chart` draws it as it is (presenter mode
    draws a copy)."""
    return _built_once((current_language(), *key), build)


@st.cache_resource(max_entries=256, show_spinner=False)
def _built_once(key, _build):  # the leading underscore: Streamlit does not hash `_build`
    return _build()


def chart_rows(charts, rows, key_prefix):
    """Plotly figures ({name: figure}) in rows of columns, e.g. rows (("loss", "accuracy"), ("lr", "speed")); each
    chart's key is key_prefix + name."""
    for row in rows:
        for column, name in zip(st.columns(len(row)), row):
            plotly_chart(column, charts[name], key_prefix + name)
