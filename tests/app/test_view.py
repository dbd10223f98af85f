"""What every chart shares (ui.plotly_chart): the toolbar's image format, presenter mode, "Download this view"."""
import json

import pytest
from page_helpers import charts, open_page

from attnviz.app import figures
from attnviz.app.markdown import escape
from attnviz.app.standalone import view_html
from attnviz.app.ui import message

PAGES = ["pages/explorer.py", "pages/positional.py", "pages/mechanics.py", "pages/decoding.py"]


def configs(at):
    """{chart key: plotly config} of every chart on the page, as the browser receives them."""
    return {chart.proto.id.split("-", 2)[-1]: json.loads(chart.proto.config) for chart in at.get("plotly_chart")}


def font_sizes(figure):
    layout = figure["layout"]
    return layout.get("font", {}).get("size"), layout.get("xaxis", {}).get("tickfont", {}).get("size")


@pytest.mark.parametrize("page", PAGES)
def test_every_chart_saves_png_or_svg_as_chosen_in_the_sidebar(page_models, page):
    at = open_page(page, model="test-reverse", text="abcdef")
    assert not at.exception
    assert configs(at) and all(c["toImageButtonOptions"]["format"] == "png" and not c["displaylogo"]
                               for c in configs(at).values())
    at.button_group(key="image_format_box").set_value("svg").run()
    assert all(c["toImageButtonOptions"] == {"format": "svg", "filename": key, "scale": 2}
               for key, c in configs(at).items())
    at.switch_page("pages/explorer.py" if page != "pages/explorer.py" else "pages/positional.py").run()
    assert not at.exception
    assert {c["toImageButtonOptions"]["format"] for c in configs(at).values()} == {"svg"}  # the choice carries


@pytest.mark.parametrize("page", PAGES)
def test_the_view_download_holds_the_pages_figures(page_models, page):
    at = open_page(page, model="test-reverse", text="abcdef")
    assert [b.label for b in at.sidebar.get("download_button")] == ["Download this view"]
    shown = at.session_state["view_figures"]
    drawn = charts(at)
    assert list(shown) == list(drawn)  # every chart of the page, in page order
    document = view_html("page", shown)
    assert all(f'<section id="{key}">' in document for key in drawn)
    assert document.count("Plotly.newPlot(") == len(drawn)


def test_presenter_mode_from_the_link_enlarges_figures_and_text_and_stays_in_the_url(page_models):
    at = open_page("pages/explorer.py", model="test-reverse", text="abcdef", present="1")
    assert not at.exception
    assert at.toggle(key="present_toggle").value
    assert at.query_params["present"] in ("1", ["1"])
    assert all(font_sizes(f) == (figures.PRESENTER_FONT_PX,) * 2 for f in charts(at).values())
    assert any("font-size" in h.proto.body for h in at.get("html"))  # the page's text, larger
    assert all(c["displayModeBar"] is False for c in configs(at).values())  # fewer controls
    assert not at.sidebar.get("download_button") and "Trains on" not in " ".join(c.value for c in at.sidebar.caption)
    links = [link.proto.page for link in at.get("page_link")]
    assert links and all("present=1" in link.proto.query_string for link in at.get("page_link"))
    at.switch_page("pages/positional.py").run()
    assert at.query_params["present"] in ("1", ["1"]) and at.toggle(key="present_toggle").value

    at.toggle(key="present_toggle").set_value(False).run()  # off again: ordinary sizes, and out of the URL
    assert "present" not in at.query_params
    assert all(font_sizes(f) != (figures.PRESENTER_FONT_PX,) * 2 for f in charts(at).values())


def test_the_presenter_toggle_puts_presenter_mode_in_the_url(page_models):
    at = open_page("pages/explorer.py", model="test-reverse", text="abcdef")
    assert "present" not in at.query_params and not any("font-size" in h.proto.body for h in at.get("html"))
    at.toggle(key="present_toggle").set_value(True).run()
    assert at.query_params["present"] in ("1", ["1"])
    assert all(font_sizes(f) == (figures.PRESENTER_FONT_PX,) * 2 for f in charts(at).values())


def test_messages_are_sentences_and_names_keep_their_spelling():
    assert message(ValueError("line 2 of the TSV file has 1 tab-separated column")).startswith("Line 2 of")
    assert message("d_model=64 is not possible") == escape("d_model=64 is not possible")  # escaped: it may quote input
    assert message("'x' exists already") == escape("'x' exists already") and message("") == ""
