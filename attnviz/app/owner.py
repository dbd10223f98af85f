"""Whose a run and a model are: an owner token for each browser, which a reload keeps and a link never carries.

Streamlit 1.67 gives a session no identity of its browser of its own: `st.context.headers` and
`st.context.cookies` are read-only copies of what the browser sent, and a page cannot set a cookie. A URL
parameter would be copied into every shared link (a link to a view must not hand over the run). What every
browser does carry is the `_streamlit_xsrf` cookie: Streamlit's server sets it on the first page load (while
XSRF protection is on, the default), keeps its secret token when it sets it again, and the browser sends it with
every request of that site, after a reload and in every tab, and never in a link. Its value, `2|mask|masked|time`,
is re-masked at each page load, so the token is the unmasked secret; the owner is a one-way hash of it, so the
cookie itself is never stored, shown or compared:

    owner_token(st.context.cookies)   # '9f86d081884c7d659a2feaa0c55ad015' (None without the cookie)

It is a session cookie: ownership lasts until the browser is closed (a student's models stay listed, they are
just nobody's "yours" afterwards). Without the cookie (XSRF protection turned off, or AppTest) attnviz.app.ui
falls back to a token per session, which a reload loses.
"""
import binascii
import hashlib

XSRF_COOKIE = "_streamlit_xsrf"


def xsrf_secret(value):
    """The secret bytes of an XSRF cookie value "2|mask|masked_token|timestamp" (hex): the masked token XOR-ed
    with the repeated mask, as Streamlit (and tornado) mask it. None for a value that is not one."""
    try:
        version, mask, masked, _ = value.strip("\"'").split("|")
        mask, masked = binascii.a2b_hex(mask), binascii.a2b_hex(masked)
    except (ValueError, AttributeError):  # not four fields, not hex (binascii.Error is a ValueError), no cookie
        return None
    if version != "2" or not mask or not masked:
        return None
    return bytes(b ^ mask[i % len(mask)] for i, b in enumerate(masked))


def owner_token(cookies):
    """The owner token of the browser that sent `cookies` (a mapping, e.g. st.context.cookies): 32 hex digits of
    a SHA-256 of the cookie's secret; None without a usable XSRF cookie."""
    secret = xsrf_secret(cookies.get(XSRF_COOKIE))
    return hashlib.sha256(b"attnviz owner:" + secret).hexdigest()[:32] if secret else None
