"""The language picker: ?lang=zh opens the app in Chinese, the choice carries to other pages and into the links,
and English stays the default. Pages still being translated are checked as they are translated."""
from page_helpers import open_page
from streamlit.testing.v1 import AppTest

from attnviz.app.ui import available_pages
from attnviz.i18n import translations

APP = "../../app.py"
ZH = translations("zh")


def run_home(**query_params):
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(query_params)
    return at.run()


def menu_labels(at):
    return [link.proto.label for link in at.sidebar.get("page_link")]


def test_chinese_link_shows_home_and_menu_in_chinese():
    at = run_home(lang="zh")
    assert not at.exception
    assert at.sidebar.selectbox(key="language").value == "zh"
    assert menu_labels(at) == [ZH.gettext(page.title) for page in available_pages()]
    assert "注意力浏览器" in menu_labels(at) and "位置编码" in menu_labels(at)
    subheaders = [h.value for h in at.subheader]
    assert subheaders[:1] == ["从哪里开始"] and "模型" in subheaders and "设备" in subheaders
    assert at.query_params["lang"] == "zh"


def test_english_is_the_default_and_an_unknown_language_falls_back_to_it():
    for params in ({}, {"lang": "xx"}):
        at = run_home(**params)
        assert not at.exception
        assert at.sidebar.selectbox(key="language").value == "en"
        assert "Attention explorer" in menu_labels(at)


def test_the_language_survives_picking_it_and_switching_pages():
    at = run_home()
    at.sidebar.selectbox(key="language").set_value("zh").run()
    assert "注意力浏览器" in menu_labels(at)
    at.switch_page("pages/positional.py").run()
    assert not at.exception
    assert "注意力浏览器" in menu_labels(at)  # the next page keeps the session's language
    assert at.sidebar.selectbox(key="language").value == "zh"
    links = at.sidebar.get("page_link")
    assert all("lang=zh" in link.proto.query_string for link in links)  # a link opened elsewhere keeps it too


def test_a_page_opened_from_a_chinese_link_is_chinese():
    at = open_page("pages/explorer.py", lang="zh")
    assert not at.exception
    assert "首页" in menu_labels(at)
