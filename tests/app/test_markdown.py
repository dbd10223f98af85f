"""User text through `markdown.escape` renders as that same text: no image, link, emphasis, heading or HTML.

The reference renderer is markdown-it-py, a CommonMark implementation (Streamlit's own renderer follows CommonMark);
Streamlit's directives (`:red[...]`, `:material/...:`) and `$...$` maths are checked by their markers surviving as text.
"""
import html

from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from attnviz.app.markdown import code, escape, marked

RENDER = MarkdownIt("commonmark", {"html": True, "linkify": False})
HOSTILE = [
    "![x](http://127.0.0.1:8899/a.png)", "[click](javascript:alert(1))", "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>", "**bold** _it_ `code`", "# heading", "1. list", "- item", "> quote",
    ":red[red] :material/home: $x^2$", "a\\", "&amp; &lt;", "line one\nline two", "<http://127.0.0.1/>",
]


def paragraph_text(markdown_text):
    """The rendered HTML of one paragraph, without its <p> wrapper, or None when it is not a plain paragraph."""
    rendered = RENDER.render(markdown_text).strip()
    if not (rendered.startswith("<p>") and rendered.endswith("</p>")):
        return None
    return rendered[3:-4].replace("<br />\n", "\n")  # a kept line break


def renders_as_itself(text):
    """The escaped text renders as one paragraph holding no HTML tag, whose text is `text`."""
    rendered = paragraph_text(escape(text))
    return rendered is not None and "<" not in rendered and html.unescape(rendered) == text


def test_hostile_text_renders_as_itself():
    for text in HOSTILE:
        assert renders_as_itself(text), (text, RENDER.render(escape(text)))


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1).filter(lambda t: t.isprintable() and t.strip(" ") == t))
def test_any_printable_text_renders_as_itself(text):
    assert renders_as_itself(text)


def test_control_characters_are_written_as_escapes():
    assert paragraph_text(escape("a\x00b")) == "a\\x00b"


def test_code_and_marked_keep_text_literal():
    assert RENDER.render(code("![x](http://h/a.png)")).strip() == "<p><code>![x](http://h/a.png)</code></p>"
    assert "<img" not in RENDER.render(marked("![x](http://h/a.png)"))
