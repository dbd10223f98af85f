"""The GPU suite reuses the page tests' small checkpoints (tests/app/conftest.py)."""
from tests.app.conftest import page_models  # noqa: F401  (a fixture)
