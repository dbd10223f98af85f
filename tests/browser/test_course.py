"""The Course page in a real browser: a walk through every lesson with the Next button (each with its figure and no
exception, the URL following), the answer shown on demand, and a lesson's link followed by a click, in the learner's
own session, to the full page at the lesson's state, even after the learner changed that page."""
import re

from playwright.sync_api import expect

from attnviz.app.course import LESSONS

TIMEOUT_MS = 90_000


def settled(page):
    expect(page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]')).to_be_attached(
        timeout=TIMEOUT_MS)
    return page


def test_walk_every_lesson_with_the_next_button(open_page):
    page = open_page("course")
    page.locator(".st-key-lesson_sequences_answer label").click()
    expect(page.get_by_text(LESSONS[0].answer[:40])).to_be_visible(timeout=TIMEOUT_MS)
    for number, lesson in enumerate(LESSONS, start=1):
        expect(page.locator("h2").first).to_contain_text(f"{number}. {lesson.title}", timeout=TIMEOUT_MS)
        settled(page)
        expect(page).to_have_url(re.compile(rf"lesson={re.escape(lesson.slug)}"))
        expect(page.locator(".st-key-lesson_figure .js-plotly-plot")).to_be_visible(timeout=TIMEOUT_MS)
        expect(page.locator(".stException")).to_have_count(0)
        expect(page.locator('[data-testid="stAlertContentWarning"]')).to_have_count(0)
        if number < len(LESSONS):
            page.locator(".st-key-lesson_next button").click()
    expect(page.locator(".st-key-lesson_next")).to_have_count(0)


def expect_explorer_at(page, head):
    """The explorer showing what the encoder-decoder lesson names: reverse-transformer, "attention",
    cross-attention, layer 0 and `head`."""
    expect(page.locator("h1").first).to_have_text("Attention explorer", timeout=TIMEOUT_MS)
    shown = {page.get_by_role("combobox", name="Model"): re.compile(r"^reverse-transformer "),
             page.locator(".st-key-input_box input"): "attention", page.locator(".st-key-layer input"): "0",
             page.locator(".st-key-head input"): str(head)}
    for widget, value in shown.items():  # a busy machine may still be running the page: each waits its turn
        expect(widget).to_have_value(value, timeout=TIMEOUT_MS)
    expect(page.get_by_role("radio", name="Cross-attention (decoder → encoder)")).to_be_checked(timeout=TIMEOUT_MS)
    settled(page)


def test_a_lessons_link_opens_the_full_page_at_its_state_in_the_same_session(open_page):
    page = open_page("course?lesson=encoder-decoder")
    page.locator(".st-key-lesson_encoder-decoder_head").get_by_role("combobox").click()
    page.get_by_role("option", name="head 2").click()
    link = page.get_by_role("link", name=re.compile("Open the full page"))
    expect(link).to_have_attribute("href", re.compile(r"head=2"), timeout=TIMEOUT_MS)  # the link follows the input
    link.click()
    expect_explorer_at(page, head=2)
    expect(page).to_have_url(re.compile(r"/explorer\?.*head=2"))

    page.locator(".st-key-head").get_by_role("combobox").click()  # the learner looks at another head there
    page.get_by_role("option", name="3", exact=True).click()
    settled(page)
    page.locator(".st-key-menu").get_by_role("link", name="Course").click()  # back to the course: its lesson kept
    expect(page.locator("h2").first).to_contain_text("Encoder and decoder", timeout=TIMEOUT_MS)
    settled(page)
    page.get_by_role("link", name=re.compile("Open the full page")).click()
    expect_explorer_at(page, head=2)  # the lesson's head again, not the one chosen on the explorer
