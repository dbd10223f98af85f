"""A page's figures as one standalone HTML file ("Download this view"): interactive plotly charts that open in
any browser without a network, since plotly.js travels inside the file and nothing refers to a server.

The toolbar of each chart saves it as a PNG (the camera) or as an SVG (the button beside it), for slides and
papers. No streamlit here: the ui package collects the figures a page draws and offers this file for download. Its
words are in the session's language (attnviz.i18n), in the figures' font stack.
"""
import html
import json

import plotly.io as pio
from plotly.offline import get_plotlyjs

from attnviz.app.figures import FONT_FAMILY
from attnviz.i18n import _, current_language

# Run after each chart is drawn ({plot_id} is its div, CONFIG its configuration, SVG_NAME the button's tooltip): the
# same configuration plus a button that saves an SVG. Plotly's config is JSON, so a button with a click handler
# comes from JavaScript.
SVG_BUTTON = """
const chart = document.getElementById('{plot_id}'), config = CONFIG;
Plotly.react(chart, chart.data, chart.layout, Object.assign({}, config, {modeBarButtonsToAdd: [{
  name: SVG_NAME, icon: Plotly.Icons.camera,
  click: gd => Plotly.downloadImage(gd, {format: 'svg', filename: config.toImageButtonOptions.filename})}]}));
"""


def figure_div(name, fig):
    """One chart as a <div> (with its script), its camera saving a PNG named after it, plus an SVG button."""
    config = {"displaylogo": False, "toImageButtonOptions": {"format": "png", "filename": name, "scale": 2}}
    script = SVG_BUTTON.replace("CONFIG", json.dumps(config)).replace("SVG_NAME",
                                                                      json.dumps(_("Download plot as an SVG")))
    return pio.to_html(fig, config=config, full_html=False, include_plotlyjs=False, include_mathjax=False,
                       post_script=script, default_width="100%")


def view_html(title, charts, link=""):
    """The HTML document of a view: `title` (a page's title), `charts` ({name: plotly figure}, in page order) and
    the `link` that shows the same view in the app (its query string), both shown as text."""
    divs = "\n".join(f'<section id="{html.escape(name)}">{figure_div(name, fig)}</section>'
                     for name, fig in charts.items())
    note = html.escape(_("The link to this view in the app: {link}")).format(
        link=f"<code>{html.escape(link)}</code>") if link else ""
    saved = html.escape(_("Saved from attnviz."))
    body = divs or "<p>" + html.escape(_("This view has no figures.")) + "</p>"
    return (f'<!DOCTYPE html>\n<html lang="{current_language()}"><head><meta charset="utf-8">'
            f"<title>attnviz: {html.escape(title)}</title>\n<script>{get_plotlyjs()}</script>\n"
            f"<style>body {{ font-family: {FONT_FAMILY}; margin: 2rem; }} section {{ margin: 1.5rem 0; }}</style>"
            f"</head>\n<body><h1>{html.escape(title)}</h1><p>{saved} {note}</p>\n"
            f"{body}\n</body></html>\n")
