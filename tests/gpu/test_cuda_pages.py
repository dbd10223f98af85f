"""Every page runs under AppTest with the device forced to CUDA (ATTNVIZ_DEVICE=cuda). Skipped without a GPU."""
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
PAGES = ["app.py"] + sorted(path.relative_to(ROOT).as_posix() for path in (ROOT / "pages").glob("*.py"))


@pytest.mark.cuda
@pytest.mark.parametrize("page", PAGES)
def test_every_page_runs_with_the_device_forced_to_cuda(page, page_models, monkeypatch):
    monkeypatch.setenv("ATTNVIZ_DEVICE", "cuda")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params["model"] = "test-reverse"
    (at.run() if page == "app.py" else at.switch_page(page).run())  # a session's first run, as a link opens it
    assert not at.exception, [e.message for e in at.exception]
    assert any("CUDA" in caption.value for caption in at.sidebar.caption)  # the badge: training goes to the GPU
