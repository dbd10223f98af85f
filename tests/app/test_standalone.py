"""The standalone HTML of a view: every figure inside with its data, plotly.js inline, nothing fetched from a server."""
import json
from html.parser import HTMLParser

import numpy as np
import plotly.io as pio
from plotly.offline import get_plotlyjs

from attnviz.app import figures
from attnviz.app.standalone import view_html


class Document(HTMLParser):
    """What an HTML document refers to and runs: every src/href/action attribute, and the text of each script."""

    def __init__(self, text):
        super().__init__()
        self.references, self.scripts, self.in_script, self.headings = [], [], False, []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.references += [value for name, value in attrs if name in ("src", "href", "action", "srcset", "data")]
        self.in_script = tag == "script"
        if tag == "script":
            self.scripts.append("")

    def handle_endtag(self, tag):
        self.in_script = False

    def handle_data(self, data):
        if self.in_script:
            self.scripts[-1] += data
        else:
            self.headings.append(data)


def test_a_view_holds_every_figure_its_data_and_plotly_itself():
    zoom = figures.attention_heatmap(np.eye(3), ["a", "b", "c"], ["x", "y", "z"], "layer 0, head 1")
    loss = figures.curves([1, 2, 3], {"training": [2.5, 0.7, 0.06]}, "Loss", log_y=True)
    text = view_html("Attention explorer", {"zoom": zoom, "loss": loss}, "?model=m&text=abc")
    document = Document(text)
    assert document.references == []  # no script, style, image or link comes from anywhere
    assert document.scripts[0] == get_plotlyjs()  # plotly.js itself, inline, first
    charts = [script for script in document.scripts[1:] if "Plotly.newPlot" in script]
    assert len(charts) == 2
    for chart, fig, values in ((charts[0], zoom, "z"), (charts[1], loss, "y")):
        encoded = json.loads(pio.to_json(fig))["data"][0][values]  # plotly's own encoding of the numbers
        unescaped = chart.replace("\\u002f", "/")  # plotly writes "/" so that no "</script>" ends the script
        assert json.dumps(encoded["bdata"] if isinstance(encoded, dict) else encoded) in unescaped
    assert "layer 0, head 1" in charts[0] and "Loss" in charts[1]
    assert '"format": "png"' in charts[0] and "format: 'svg'" in charts[0]  # both downloads on its toolbar
    assert "?model=m&amp;text=abc" in text


def test_user_text_in_a_view_stays_text():
    text = view_html("<script>alert(1)</script>", {}, "?text=<img src=x onerror=alert(1)>")
    document = Document(text)
    assert document.references == [] and len(document.scripts) == 1  # plotly.js only
    assert "<script>alert(1)</script>" in "".join(document.headings)  # shown as the text it is


def test_a_chinese_view_is_in_chinese_in_the_figures_fonts(chinese):
    zoom = figures.attention_heatmap(np.eye(2), ["a", "b"], ["x", "y"])
    text = view_html("注意力浏览器", {"zoom": zoom}, "?lang=zh")
    document = Document(text)
    assert '<html lang="zh">' in text and document.references == []
    prose = "".join(document.headings)
    assert chinese.gettext("Saved from attnviz.") in prose and "Saved from" not in prose
    assert chinese.gettext("The link to this view in the app: {link}").format(link="") in prose
    assert json.dumps(chinese.gettext("Download plot as an SVG")) in document.scripts[1]  # the SVG button's tooltip
    assert f"font-family: {figures.FONT_FAMILY}" in text  # its headings in the figures' font stack
    assert chinese.gettext("This view has no figures.") in "".join(Document(view_html("空", {})).headings)
