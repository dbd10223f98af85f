"""User text inside Markdown: every string a user controls (a URL parameter, a typed input, a run or model name,
an owner, a file's contents, an error message that quotes them) is shown as text, never rendered.

Streamlit renders Markdown in st.markdown, st.caption, st.info/warning/error/success, st.toast and widget labels:
an image (`![x](http://...)`) there makes every viewer's browser fetch its URL, a link can carry `javascript:`, and
`:red[...]`, `$...$` or `:material/...:` are Streamlit's own directives. CommonMark lets a backslash escape any ASCII
punctuation, so escaping all of it (and writing control characters as visible escapes) leaves plain text.
"""
import re

from attnviz.data.tokenizers import visible

ASCII_PUNCTUATION = re.compile(r"""([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])""")


def escape(text):
    """`text` as literal Markdown text: every ASCII punctuation mark backslash-escaped, newlines kept as line breaks
    and other control characters written as escapes (`visible`)."""
    lines = str(text).split("\n")
    return "  \n".join(ASCII_PUNCTUATION.sub(r"\\\1", visible(line)) for line in lines)


def code(text):
    """`text` as inline code on one line: newlines and other control characters written as escapes. Inside a code
    span nothing is rendered; double backticks with spaces let a backtick inside the text not end it."""
    return f"`` {visible(str(text))} ``"


def marked(text):
    """`text` as an orange badge with an arrow, to point at one token among `code` chips (its text escaped)."""
    return ":orange-badge[:material/arrow_downward: **" + escape(text) + "**]"
