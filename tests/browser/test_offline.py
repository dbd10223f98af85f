"""Offline means offline: every request a page makes goes to the app's own server (icons, fonts and plotly
included), a downloaded view opens with no network at all, and the figures look as they should in a browser:
colour bars as tall as their heatmaps, log axes labelled with magnitudes."""
import base64
import re
from urllib.parse import urlparse

import pytest
from playwright.sync_api import expect

from attnviz.app import figures, ui
from attnviz.app.standalone import view_html

LOCAL = ("data:", "blob:", "about:")


def own_server(url, app_url):
    parsed, app = urlparse(url), urlparse(app_url)
    return url.startswith(LOCAL) or (parsed.hostname in ("127.0.0.1", "localhost") and parsed.port == app.port)


def show_everything(page):
    """Open every tab of the page, so that the charts inside them are drawn too, and hover one chart (its toolbar)."""
    for tab in page.get_by_role("tab").all():
        tab.click()
        page.wait_for_timeout(300)
    if page.locator(".js-plotly-plot:visible").count():
        page.locator(".js-plotly-plot:visible").first.hover()


@pytest.mark.parametrize("query", ["", "?present=1"])
def test_every_request_of_every_page_goes_to_the_apps_own_server(open_page, app_url, query):
    requests = []
    page = open_page("")
    page.on("request", lambda request: requests.append(request.url))
    for info in ui.available_pages():
        page = open_page(info.url_path + query)
        show_everything(page)
        expect(page.locator(".stException")).to_have_count(0)
        icon = page.locator("link[rel='shortcut icon']").get_attribute("href")
        assert own_server(page.evaluate("href => new URL(href, location.href).href", icon), app_url), icon
    page.wait_for_load_state("networkidle")
    outside = sorted({url for url in requests if not own_server(url, app_url)})
    assert not outside, f"{len(outside)} requests left the machine: {outside[:5]}"


def test_the_tab_icon_is_the_one_that_ships_with_the_app(open_page):
    page = open_page("explorer")
    icon = page.locator("link[rel='shortcut icon']").get_attribute("href")
    if icon.startswith("data:image/svg+xml;base64,"):  # Streamlit inlines a small image
        served = base64.b64decode(icon.split(",", 1)[1])
    else:
        served = page.request.get(page.evaluate("href => new URL(href, location.href).href", icon)).body()
    assert served == ui.APP_ICON.read_bytes()


def offline_page(browser, path):
    """A tab of its own with no network: every request other than the file itself is recorded and refused."""
    context = browser.new_context(offline=True, viewport={"width": 1200, "height": 900})
    tried = []

    def refuse(route):
        tried.append(route.request.url)
        route.abort()

    context.route(re.compile(r"^(?!file:).*"), refuse)
    page = context.new_page()
    page.goto(path.as_uri())
    return page, tried


def test_download_this_view_opens_offline_with_every_figure(open_page, browser, tmp_path):
    page = open_page("explorer?model=reverse-transformer&text=attention")
    with page.expect_download(timeout=60_000) as info:
        page.get_by_role("button", name="Download this view").click()
    saved = tmp_path / "view.html"
    info.value.save_as(saved)
    text = saved.read_text()
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", text)  # nothing loaded from anywhere
    charts = text.count("<section")  # one per chart of the page, all tabs (test_view.py checks which)
    assert charts >= 4

    offline, tried = offline_page(browser, saved)
    expect(offline.locator(".js-plotly-plot")).to_have_count(charts, timeout=30_000)  # every one drawn
    offline.locator(".js-plotly-plot").first.hover()
    titles = offline.locator(".modebar-btn").evaluate_all("buttons => buttons.map(b => b.dataset.title)")
    assert "Download plot as a PNG" in titles and "Download plot as an SVG" in titles
    assert tried == []
    offline.context.close()


def test_log_axes_label_every_tick_with_a_number(browser, tmp_path):
    # Before: a log axis over 0.05..5 labelled its minor ticks "5 2 1 5 2 0.1", the leading digits alone.
    fig = figures.curves([0, 1, 2, 3], {"loss": [5.0, 1.2, 0.3, 0.05]}, "Loss", "step", "loss", log_y=True)
    path = tmp_path / "loss.html"
    path.write_text(view_html("Loss", {"loss": fig}))
    page, tried = offline_page(browser, path)
    labels = page.locator(".ytick text")
    expect(labels.first).to_be_attached(timeout=30_000)
    values = [float(text.replace(",", "")) for text in labels.all_text_contents()]  # every label a full number
    assert len(values) >= 3 and len(set(values)) == len(values)
    assert values == sorted(values) and min(values) < 0.1 < 1 < max(values)  # bottom to top, over magnitudes
    assert tried == []
    page.context.close()


@pytest.mark.parametrize("width", [1024, 1400])
def test_colour_bars_are_as_tall_as_their_heatmaps_at_any_width(browser, app_url, width):
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(f"{app_url}/explorer?model=reverse-transformer&text=attention")
    for tab, keys in (("Heads", ["zoom"]), ("Rollout", ["raw", "rollout"])):
        page.get_by_role("tab", name=tab, exact=True).click()
        for key in keys:
            chart = page.locator(f".st-key-{key} .js-plotly-plot")
            expect(chart.locator("rect.cbfill")).to_be_attached(timeout=90_000)
            bar = chart.locator("rect.cbfill").bounding_box()
            plot = chart.locator(".nsewdrag").first.bounding_box()
            assert abs(bar["height"] - plot["height"]) <= 2 and abs(bar["y"] - plot["y"]) <= 2, (key, bar, plot)
    page.close()
