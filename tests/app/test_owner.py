"""A browser's owner token: read from Streamlit's XSRF cookie the way Streamlit's server writes it, the same for
every masking of one secret (each page load re-masks it), different for another browser, never the cookie itself."""
import os
import re

from fuzzing import fuzz
from hypothesis import given
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest
from streamlit.web.server.starlette.starlette_app_utils import generate_xsrf_token_string

from attnviz.app.owner import XSRF_COOKIE, owner_token, xsrf_secret

APP = "../../app.py"


def test_every_masking_of_one_browsers_secret_gives_one_token():
    secret = os.urandom(16)
    cookies = [generate_xsrf_token_string(secret, 1_700_000_000 + i) for i in range(5)]  # five page loads
    assert len(set(cookies)) == 5  # a fresh mask each time
    assert all(xsrf_secret(cookie) == secret for cookie in cookies)
    tokens = {owner_token({XSRF_COOKIE: cookie}) for cookie in cookies}
    assert len(tokens) == 1 and re.fullmatch("[0-9a-f]{32}", tokens.pop())


def test_another_browser_has_another_token_and_no_token_shows_the_cookie():
    first, second = (generate_xsrf_token_string(os.urandom(16)) for _ in range(2))
    token = owner_token({XSRF_COOKIE: first})
    assert token != owner_token({XSRF_COOKIE: second})
    assert not any(part in token for part in [xsrf_secret(first).hex(), *first.split("|")[1:3]])


@fuzz(200)
@given(value=st.text(max_size=80) | st.builds(lambda a, b, c: f"2|{a}|{b}|{c}", st.text(max_size=9),
                                               st.text(max_size=9), st.text(max_size=5)))
def test_any_cookie_value_gives_a_token_or_none(value):
    token = owner_token({XSRF_COOKIE: value})
    assert token is None or re.fullmatch("[0-9a-f]{32}", token)


def test_without_the_cookie_each_session_has_its_own_token_kept_across_reruns():
    assert owner_token({}) is None and owner_token({XSRF_COOKIE: "no token"}) is None
    first, second = AppTest.from_file(APP, default_timeout=60).run(), AppTest.from_file(APP, default_timeout=60).run()
    token = first.session_state["owner_token"]
    assert token != second.session_state["owner_token"]
    assert first.run().session_state["owner_token"] == token
