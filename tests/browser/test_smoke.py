"""Smoke test in a real browser: the app serves, and every page in the menu opens without an exception."""
import re

import pytest
from playwright.sync_api import expect

from attnviz.app import ui
from attnviz.training import checkpoint_folder
from attnviz.training.checkpoint_list import list_checkpoints
from attnviz.training.device import describe, pick_device


def test_landing_page(open_page, tmp_path):
    page = open_page("")
    expect(page).to_have_title(re.compile("Home"))
    expect(page.locator("h1").first).to_have_text("attnviz")
    device = describe(pick_device("auto")).split(" (")[0]  # "CPU", "CUDA", "Apple MPS"
    expect(page.locator('[data-testid="stSidebar"]')).to_contain_text(f"Trains on {device}")
    expect(page.locator(".stException")).to_have_count(0)
    page.screenshot(path=tmp_path / "home.png", full_page=True)


def test_model_picker_keeps_the_choice_in_the_url(open_page, make_checkpoint):
    # The server reads the same ATTNVIZ_USER_DIR (tests/conftest.py), and lists models on every run.
    make_checkpoint(checkpoint_folder.USER_DIR / "smoke-a")
    make_checkpoint(checkpoint_folder.USER_DIR / "smoke-b", task="dates")  # made outside any browser: nobody's "yours"
    page = open_page("")
    page.get_by_role("combobox", name="Model").click()
    page.get_by_role("option", name="smoke-b (dates, by command line)").click()
    expect(page).to_have_url(re.compile(r"[?&]model=smoke-b(&|$)"))
    expect(page.locator('[data-testid="stSidebar"]')).to_contain_text("Trains on")  # the sidebar survived the rerun

    page = open_page("?model=smoke-b")  # a shared link
    expect(page.get_by_role("combobox", name="Model")).to_have_value("smoke-b (dates, by command line)")
    expect(page.locator('[data-testid="stDataFrame"]')).to_be_visible()  # the landing page's model table


def test_a_link_to_a_page_is_the_first_request_of_a_server(page, fresh_app_url):
    # Streamlit serves pages/ in its pages-folder mode from the first request on; each page draws the sidebar.
    page.goto(f"{fresh_app_url}/explorer")
    expect(page.locator('[data-testid="stSidebar"]')).to_contain_text("Trains on", timeout=90_000)
    expect(page.locator(".st-key-menu")).to_contain_text("Home")  # the menu of titles, not of file names
    expect(page.locator(".st-key-menu").get_by_text("explorer", exact=True)).to_have_count(0)  # no file name
    expect(page.locator("h1").first).to_have_text("Attention explorer")


@pytest.mark.parametrize("page_info", ui.available_pages(), ids=lambda p: p.url_path)
def test_page_opens(open_page, page_info):
    page = open_page(page_info.url_path)
    expect(page).to_have_title(re.compile(re.escape(page_info.title)))
    expect(page.locator(".st-key-menu").get_by_text(page_info.title, exact=True)).to_be_visible()
    expect(page.locator(".stException")).to_have_count(0)


# The width of the text a select box shows, in the font it shows it in, and the room the box has for it.
TEXT_AND_ROOM = """() => [...document.querySelectorAll('[data-testid="stSelectbox"]')].map(box => {
  const input = box.querySelector('input'), canvas = document.createElement('canvas').getContext('2d');
  canvas.font = getComputedStyle(input).font;
  return [box.querySelector('label').textContent, input.value, canvas.measureText(input.value).width,
          input.clientWidth]})"""


def test_select_boxes_show_their_whole_choice(browser, app_url):
    # Before: "reverse-long-lstm-bahdanau (reverse)" in the sidebar's picker and the Task and Architecture boxes
    # of Train live ("transformer: Transformer encoder-decoder (self-attention, ...") were cut short at 1024 px.
    longest = max((info for info in list_checkpoints() if info.shipped), key=lambda i: len(i.name))
    page = browser.new_page(viewport={"width": 1024, "height": 900})
    page.goto(f"{app_url}/train?model={longest.name}")
    expect(page.get_by_role("combobox", name="Architecture")).to_be_visible(timeout=90_000)
    boxes = {label: (value, width, room) for label, value, width, room in page.evaluate(TEXT_AND_ROOM)}
    assert {"Model", "Task", "Architecture"} <= set(boxes)
    assert boxes["Model"][0].startswith(longest.name)
    for label, (value, width, room) in boxes.items():
        assert width <= room, f"{label}: {value!r} needs {width:.0f} px, the box has {room}"
    page.close()
