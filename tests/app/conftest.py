"""AppTest set-up shared by the page tests."""
import pytest
from streamlit.runtime.pages_manager import PagesManager


@pytest.fixture(autouse=True)
def navigation_not_pages_folder(monkeypatch):
    """Run app.py as an st.navigation app on every AppTest run, not as a legacy `pages/`-folder app.

    AppTest resets `PagesManager.uses_pages_directory` before each run, and a `pages/` folder beside
    app.py turns it on again: from the second `run()` on, the page file then ran without app.py (no
    sidebar, no model picker). The real server decides once per process, when app.py calls
    st.navigation. Background: streamlit/streamlit#9446 and #14217 (which added the reset).
    """
    original_init = PagesManager.__init__

    def init(self, *args, **kwargs):
        PagesManager.uses_pages_directory = False
        original_init(self, *args, **kwargs)

    monkeypatch.setattr(PagesManager, "__init__", init)
