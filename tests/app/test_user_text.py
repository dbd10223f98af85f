"""Text from users is text: Markdown, HTML and `javascript:` links sent through every page's URL parameters and
inputs come back as text, never as an image, a link or a script.

Every Markdown-rendered string of a page (markdown, captions, warnings, errors, infos, successes, toasts, widget
labels and help) is rendered with markdown-it-py, a CommonMark implementation, with raw HTML allowed (stricter than
Streamlit, which drops raw HTML outside `unsafe_allow_html`); no <img>, <a> or <script> may come out of it, and no
plotly figure may carry those tags in its text.
"""
import pytest
from markdown_it import MarkdownIt
from page_helpers import open_page


RENDER = MarkdownIt("commonmark", {"html": True, "linkify": False})
RENDER.validateLink = lambda url: True  # render javascript: links too, so that one unescaped is seen
HOSTILE = ("![x](http://127.0.0.1:8899/a.png) <img src=x onerror=alert(1)> [a](javascript:alert(1)) "
           "[b](http://127.0.0.1:8899/b) <script>x</script>")
TAGS = ("<img", "<a ", "<a>", "<script")
MARKDOWN_FIELDS = {"body", "label", "help", "placeholder"}  # what Streamlit renders as Markdown in an element
URL_PARAMS = ("text", "run", "model", "attention", "layer", "head", "method", "sentences", "rnn_task", "rnn_source",
              "rnn_session")
PAGES = ["app.py", "pages/explorer.py", "pages/positional.py", "pages/mechanics.py", "pages/decoding.py",
         "pages/train.py", "pages/rnn_vs_attention.py", "pages/pretrained.py"]


def elements(node):
    """Every element and block below `node` of an AppTest tree."""
    yield node
    for child in getattr(node, "children", {}).values():
        yield from elements(child)


def markdown_strings(at):
    """(where, string) for every Markdown-rendered string on the page."""
    for root in (at._tree[0], at._tree[1]):  # the main area and the sidebar
        for node in elements(root):
            proto = getattr(node, "proto", None)
            if proto is None or not hasattr(proto, "ListFields"):
                continue
            for field, value in proto.ListFields():
                if field.name in MARKDOWN_FIELDS and isinstance(value, str) and value:
                    yield f"{node.type}.{field.name}", value
                elif field.name == "options" and node.type == "radio":
                    yield f"{node.type}.options", " ".join(value)  # a radio renders its options as Markdown (a selectbox does not)


def rendered_tags(at):
    """What a page would render of the hostile text: [(where, rendered HTML)] holding a tag it must not."""
    found = [(where, html) for where, value in markdown_strings(at)
             if any(tag in (html := RENDER.render(value)) for tag in TAGS)]
    for chart in at.get("plotly_chart"):
        spec = chart.proto.spec
        found += [(f"plotly_chart {chart.proto.id}", tag) for tag in TAGS if tag in spec]
    return found


def open_with_hostile_params(page, **extra):
    params = {name: HOSTILE for name in URL_PARAMS} | extra
    return open_page(page, **params)


@pytest.mark.parametrize("page", PAGES)
def test_hostile_url_parameters_render_as_text(page_models, page):
    for extra in ({}, {"model": "test-reverse", "text": HOSTILE * 3}, {"model": "test-lm", "text": HOSTILE * 3}):
        at = open_with_hostile_params(page, **extra)  # * 3: long enough to be cut, and quoted in the warning
        assert not at.exception, (page, extra, at.exception)
        assert not rendered_tags(at), (page, extra)


@pytest.mark.parametrize("page, box", [("pages/explorer.py", "input_box"), ("pages/mechanics.py", "input_box"),
                                       ("pages/decoding.py", "input_box")])
def test_hostile_typed_input_renders_as_text(page_models, page, box):
    at = open_page(page, model="test-reverse")
    at.text_input(key=box).input(HOSTILE * 3).run()
    assert not at.exception
    assert at.text_input(key=box).value == HOSTILE * 3 and (at.warning or at.error)  # the page answered it
    assert not rendered_tags(at)


def test_hostile_sentences_render_as_text():
    at = open_page("pages/pretrained.py")  # MiniLM is in requirements.txt: its absence is a failure, not a skip
    at.text_area(key="minilm_text").set_value(HOSTILE + "\n" + "word " * 60 + HOSTILE).run()
    assert not at.exception
    assert not rendered_tags(at)


def test_the_check_finds_unescaped_text():
    """The checker itself: the same hostile text, unescaped, is found in a Markdown element."""
    class Node:
        type, children = "markdown", {}

        class proto:
            @staticmethod
            def ListFields():
                field = type("Field", (), {"name": "body"})
                return [(field, HOSTILE)]
    fake = type("AppTest", (), {"_tree": [Node, Node], "get": lambda self, kind: []})()
    assert {tag for _, html in rendered_tags(fake) for tag in TAGS if tag in html} == set(TAGS) - {"<a>"}
