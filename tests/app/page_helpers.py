"""Helpers for the page tests: open a page as a link to it does (with the link's query parameters) and read back
the plotly figures it drew."""
import base64
import json
import re

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
    """The text a Markdown element (warning, caption, subheader, ...) shows, as a reader sees it: its value rendered
    by CommonMark, tags dropped, entities read."""
    import html

    from markdown_it import MarkdownIt
    rendered = MarkdownIt("commonmark").render(element.value)
    return html.unescape(re.sub(r"<[^>]+>", "", rendered)).strip()


def shown_in(elements):
    """The text each element (st.error, st.success, st.subheader, ...) shows."""
    return [shown(element) for element in elements]


ENGLISH_PHRASE = re.compile(r"[A-Za-z][A-Za-z'’-]*(?:,? +[A-Za-z][A-Za-z'’-]*){2,}")  # three English words in a row
# not prose: code spans (`x`, and markdown.code's `` x ``), formulas, icons, hover placeholders, tags, links
NOT_PROSE = re.compile(r"`` .*? ``|`[^`]*`|<code>.*?</code>|\$\$?[^$]*\$\$?|:material/[a-z_]+:|%\{[^}]*\}|<[^>]+>|https?://\S+")
SKIPPED_FIELDS = {"id", "form_id", "spec", "data", "key", "element_id", "string_value", "default", "raw_value"}


def _strings(message):
    """Every string field of a protobuf message and its sub-messages (widget ids and raw data left out)."""
    for field, value in message.ListFields():
        if field.name in SKIPPED_FIELDS:
            continue
        values = value if field.is_repeated else [value]
        for item in values:
            if isinstance(item, str):
                yield item
            elif hasattr(item, "ListFields"):
                yield from _strings(item)


def _figure_strings(figure):
    """The words a plotly figure shows: titles, axis titles, annotations, legend names and hover templates."""
    def walk(node, name=""):
        if isinstance(node, dict):
            for key, value in node.items():
                yield from walk(value, key)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value, name)
        elif isinstance(node, str) and name in {"text", "name", "hovertemplate", "title"}:
            yield node
    yield from walk(figure["layout"])
    for trace in figure["data"]:
        yield from walk({key: trace[key] for key in ("name", "hovertemplate", "colorbar") if key in trace})


def page_texts(at, where=("main", "sidebar")):
    """Every piece of text a page run shows in `where` (its main area, its sidebar or both): element and block protos
    (labels, help, options, captions, messages, tab and expander labels), table headers and cells, and the words on
    its plotly figures."""
    for root in (getattr(at, name) for name in where):
        for node in root:
            proto = getattr(node, "proto", None)
            if getattr(node, "type", "") in {"dataframe", "table"}:
                frame = node.value
                config = json.loads(getattr(proto, "columns", "") or "{}")  # column_config: a header's shown label
                yield from (config.get(str(column), {}).get("label") or str(column) for column in frame.columns)
                yield from (cell for column in frame.columns for cell in frame[column] if isinstance(cell, str))
                continue
            elif getattr(node, "type", "") == "plotly_chart":
                yield from _figure_strings(json.loads(proto.spec))
            elif getattr(node, "type", "") == "code":
                continue
            if proto is not None and hasattr(proto, "ListFields"):
                yield from _strings(proto)


def english_phrases(text, allowed=()):
    """The English phrases (three words in a row) of `text`, outside code, formulas, icons, links, hover placeholders
    and the `allowed` strings (a model's output, a user's input)."""
    text = re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", text)  # Markdown's escapes: "mat\." reads "mat."
    for exception in sorted(allowed, key=len, reverse=True):
        text = text.replace(exception, " ")
    return ENGLISH_PHRASE.findall(NOT_PROSE.sub(" ", text))


def english_left(at, allowed=(), where=("main", "sidebar")):
    """The English phrases left on a page (`english_phrases` of every text it shows in `where`): a translated page
    has none."""
    return sorted({phrase for text in page_texts(at, where) for phrase in english_phrases(text, allowed)})


def figure_texts(fig):
    """The words a page shows of one plotly figure (a go.Figure, built outside a page): `_figure_strings` and its
    heatmaps' hover texts (`text` or `customdata`, a string per cell)."""
    figure = json.loads(fig.to_json())
    hovers = [cell for trace in figure["data"] if trace.get("type") == "heatmap" for key in ("text", "customdata")
              for row in trace.get(key) or [] if isinstance(row, list) for cell in row if isinstance(cell, str)]
    return [*_figure_strings(figure), *hovers]


def latin_words(texts):
    """The words of two or more Latin letters (and underscores: d_model, f_t) in `texts`, outside code, formulas,
    icons, links, tags and hover placeholders: in a Chinese text, the names and notation it keeps (and any English
    word left)."""
    return {word for text in texts for word in re.findall(r"[A-Za-z][A-Za-z_]+", NOT_PROSE.sub(" ", text))}
