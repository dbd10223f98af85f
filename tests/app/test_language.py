"""The language picker: ?lang=zh opens the app in Chinese, the choice carries to other pages and into the links,
and English stays the default; Home, every page's sidebar, the attention pages' shared controls and a link's fall-back
warnings read in Chinese. Pages still being translated are checked as they are translated."""
import pytest
from page_helpers import english_left, english_phrases, open_page, shown
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


def test_home_reads_in_chinese():
    at = run_home(lang="zh")
    assert not at.exception
    assert english_left(at) == []


@pytest.mark.parametrize("page", [page.file for page in available_pages()])
@pytest.mark.parametrize("present", ["0", "1"])
def test_every_pages_sidebar_reads_in_chinese(page_models, page, present):
    """The sidebar (menu, language, device, model picker, presenter mode, downloads) in Chinese on every page, in
    presenter mode too."""
    at = open_page(page, lang="zh", model="test-reverse", present=present)
    assert not at.exception
    assert at.sidebar.toggle(key="present_toggle").label == "演示模式"
    assert english_left(at, where=("sidebar",)) == []


@pytest.mark.parametrize("model, kinds", [
    ("test-reverse", ["编码器自注意力", "解码器自注意力（因果）", "交叉注意力（解码器 → 编码器）"]),
    ("test-lm", ["解码器自注意力（因果）"]),
])
def test_the_attention_pages_controls_read_in_chinese(page_models, model, kinds):
    """The shared pickers and token lines of the attention pages (attnviz.app.ui.attention), in Chinese."""
    at = open_page("pages/explorer.py", lang="zh", model=model)
    assert not at.exception
    attention = at.radio(key="attention")
    assert (attention.label, attention.options) == ("注意力", kinds)
    assert (at.selectbox(key="layer").label, at.selectbox(key="head").label) == ("层", "注意力头")
    box = at.text_input(key="input_box")
    assert box.label == "输入" and english_phrases(box.help) == []
    tokens = next(m.value for m in at.markdown if "**解码器读入**" in m.value)
    assert "**输出**（贪心解码）：" in tokens and english_phrases(tokens, allowed=[at.query_params["text"]]) == []
    assert any("**编码器读入**" in m.value for m in at.markdown) == (model == "test-reverse")

    attention.set_value("decoder self").run()  # shown by its Chinese label
    assert at.radio(key="attention").value == "decoder self" and at.query_params["attention"] == "decoder self"


def test_link_fall_back_warnings_read_in_chinese():
    def fall_backs():
        from collections import namedtuple

        from attnviz.app import ui
        from attnviz.i18n import use_language
        use_language("zh")
        field = namedtuple("Field", "key label step help")
        ui.number_inputs([field("steps", "步数", 1, ""), field("lr", "学习率", 0.1, "")], "form_",
                         {"steps": 10, "lr": 0.01}, linked=True)
        ui.choice("任务", ["reverse", "dates"], "task", param="task")

    at = AppTest.from_function(fall_backs, default_timeout=60)
    at.query_params.update(steps="2.5", lr="fast", task="nonsense")
    at.run()
    assert not at.exception
    assert sorted(shown(w) for w in at.warning) == sorted([
        "链接中的 steps 2.5 不是整数：改用 10。", "链接中的 lr fast 不是数字：改用 0.01。",
        "链接要求 task 为 nonsense，但这里没有这个选项：改用 reverse。"])
    assert english_left(at) == []


def test_a_lessons_own_controls_read_in_chinese():
    """The words attnviz.app.ui.lessons puts around every lesson (its picker, "try this", the answer's switch)."""
    at = open_page("pages/course.py", lang="zh")
    assert not at.exception
    assert at.selectbox(key="lesson").label == "课"
    assert any(m.value.startswith("**试一试：** ") for m in at.markdown)
    assert [toggle.label for toggle in at.toggle if toggle.key.startswith("lesson_")] == ["显示答案"]
