"""Every page in Chinese, as a class opening the app with ?lang=zh on the shipped models sees it: no English phrase
is left anywhere on the page (sidebar, labels, help, messages, tables, the words on the figures), only names,
notation and the text the models read, which stays as the learner typed it."""
import pytest
from page_helpers import APP, english_left, open_page
from streamlit.testing.v1 import AppTest

from attnviz.app.ui import available_pages

PAGE_VIEWS = {  # page -> the shipped model and the link's other parameters for each view checked
    "app.py": [{}],
    "pages/course.py": [{"lesson": str(n)} for n in range(1, 14)],
    "pages/explorer.py": [{"model": "reverse-transformer"}, {"model": "zh-numbers-transformer"},
                          {"model": "reverse-lstm-bahdanau"}, {"model": "induction-lm"}],
    "pages/positional.py": [{"model": "reverse-transformer"}, {"model": "reverse-lstm"}],
    "pages/mechanics.py": [{"model": "reverse-transformer", "attention": "cross"}, {"model": "prose-lm"}],
    "pages/decoding.py": [{"model": "reverse-transformer"}, {"model": "zh-numbers-transformer", "method": "beam"},
                          {"model": "dates-transformer", "method": "sample"}],
    "pages/train.py": [{}],
    "pages/rnn_vs_attention.py": [{}],
    "pages/pretrained.py": [{}],
}


# A cited paper keeps its title.
CITED_TITLES = ["On the properties of neural machine translation: encoder-decoder approaches",
                "Neural machine translation by jointly learning to align and translate", "What does BERT look at"]


def typed_text(at):
    """What the boxes hold: the models' input, left as it is (an English sentence for MiniLM, a prompt for an LM)."""
    return [line for box in [*at.text_input, *at.text_area] if box.value
            for line in [box.value, *box.value.splitlines()] if line.strip()]


def views():
    return [pytest.param(page, params, id=f"{page.split('/')[-1][:-3]}-{'-'.join(params.values()) or 'default'}")
            for page, all_params in PAGE_VIEWS.items() for params in all_params]


def test_every_page_is_listed():
    assert set(PAGE_VIEWS) == {page.file for page in available_pages()}


@pytest.mark.parametrize("page, params", views())
def test_a_page_in_chinese_has_no_english_left(page, params, chinese):
    if page == "app.py":
        at = AppTest.from_file(APP, default_timeout=120)
        at.query_params.update(lang="zh", **params)
        at.run()
    else:
        at = open_page(page, timeout=120, lang="zh", **params)
    assert not at.exception, at.exception
    assert english_left(at, allowed=typed_text(at) + CITED_TITLES) == []
