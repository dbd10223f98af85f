"""Smoke test in a real browser: the app serves, and every page in the menu opens without an exception."""
import re

import pytest
from playwright.sync_api import expect

from attnviz.app import ui
from attnviz.training import checkpoint
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
    make_checkpoint(checkpoint.USER_DIR / "smoke-a")
    make_checkpoint(checkpoint.USER_DIR / "smoke-b", task="dates")  # made outside any browser: nobody's "yours"
    page = open_page("")
    page.get_by_role("combobox", name="Model").click()
    page.get_by_role("option", name="smoke-b (dates, by command line)").click()
    expect(page).to_have_url(re.compile(r"\?model=smoke-b$"))
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
