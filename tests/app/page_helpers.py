"""Helpers for the page tests: open a page as a link to it does (with the link's query parameters) and read back
the plotly figures it drew."""
import base64
import json

import numpy as np
from streamlit.testing.v1 import AppTest

APP = "../../app.py"  # relative to the test files


def open_page(page, timeout=60, **query_params):
    """A new session's first run of `page` ("pages/x.py") with `query_params`, as a shared link opens it (each run
    within `timeout` seconds).

    Like the server, AppTest runs app.py in Streamlit's pages-folder mode, so the page file runs by itself and
    draws the sidebar with its own `ui.sidebar(__file__)`."""
    at = AppTest.from_file(APP, default_timeout=timeout)
    at.query_params.update(query_params)
    return at.switch_page(page).run()


def charts(at):
    """{element key: figure JSON} of every plotly chart on the page."""
    return {chart.proto.id.split("-", 2)[-1]: json.loads(chart.proto.spec) for chart in at.get("plotly_chart")}


def array(value):
    """A plotly JSON array as numpy: plain lists, or the typed {"dtype", "bdata", "shape"} form."""
    if isinstance(value, dict):
        data = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        shape = value.get("shape")
        return data.reshape([int(n) for n in str(shape).split(",")] if shape else -1).astype(float)
    return np.array(value, dtype=float)


def z_of(figure, trace=0):
    return array(figure["data"][trace]["z"])


def shown(element):
    """The text a Markdown element (warning, caption, ...) shows: its value rendered by CommonMark, tags dropped."""
    import html
    import re

    from markdown_it import MarkdownIt
    rendered = MarkdownIt("commonmark").render(element.value)
    return html.unescape(re.sub(r"<[^>]+>", "", rendered)).strip()
