"""The GPU suite reuses the page tests' set-up: st.navigation runs and the small checkpoints of tests/app."""
from tests.app.conftest import navigation_not_pages_folder, page_models  # noqa: F401  (fixtures)
