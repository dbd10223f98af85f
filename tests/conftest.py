"""Shared test set-up: a throw-away user checkpoint folder (or empty user and shipped folders for one test), seeded
RNGs, no training thread left behind, Chinese."""
import contextlib
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import torch

# Set before anything imports attnviz.training.checkpoint_folder (it reads the variable once), and inherited by the
# Streamlit server the browser test starts: tests never write into the repository.
USER_DIR = tempfile.mkdtemp(prefix="attnviz-test-user-")
os.environ["ATTNVIZ_USER_DIR"] = USER_DIR
torch.set_num_threads(1)  # tiny models train faster on one thread, and tests share the machine


def pytest_addoption(parser):
    parser.addoption("--fuzz-long", action="store_true",
                     help="fuzz every entry point with many examples (a release check; see tests/fuzzing.py)")


def pytest_configure(config):
    if config.getoption("--fuzz-long"):
        from fuzzing import LONG_EXAMPLES
        os.environ.setdefault("ATTNVIZ_FUZZ_EXAMPLES", str(LONG_EXAMPLES))


def pytest_unconfigure(config):
    executor = sys.modules.get("attnviz.training.executor")
    if executor is not None and executor._LOCAL is not None:
        executor._LOCAL.shutdown()  # no worker process outlives the test session
    shutil.rmtree(USER_DIR, ignore_errors=True)


@pytest.fixture(autouse=True)
def seeded():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture
def make_checkpoint():
    """make_checkpoint(folder, task=..., owner=...) saves a tiny untrained Transformer there (further keywords go
    into its meta) and returns the model.

    The folders are deleted after the test (USER_DIR is shared by the whole session).
    """
    from attnviz import TransformerConfig, build_model
    from attnviz.data.tokenizers import CharTokenizer
    from attnviz.training.checkpoint import save_checkpoint

    made = []

    def make(folder, task="reverse", metrics=None, **meta):
        tokenizer = CharTokenizer("abc")
        config = TransformerConfig(tokenizer.vocab_size, tokenizer.vocab_size, d_model=8, n_heads=2, d_ff=16)
        model = build_model(config)
        meta = {"task": {"name": task}, "metrics": metrics or {"exact_match": 0.5, "token_accuracy": 0.75}, **meta}
        made.append(save_checkpoint(folder, model, tokenizer, meta))
        return model

    yield make
    for folder in made:
        shutil.rmtree(folder, ignore_errors=True)


class ModelDirs(NamedTuple):
    user: Path
    shipped: Path


@pytest.fixture
def model_dirs(tmp_path, monkeypatch):
    """Empty user and shipped checkpoint folders in place of USER_DIR and SHIPPED_DIR, so each test decides which
    models exist: `user, shipped = model_dirs` (or model_dirs.user, model_dirs.shipped)."""
    from attnviz.training import checkpoint_folder

    dirs = ModelDirs(tmp_path / "user", tmp_path / "shipped")
    for folder in dirs:
        folder.mkdir()
    monkeypatch.setattr(checkpoint_folder, "USER_DIR", dirs.user)
    monkeypatch.setattr(checkpoint_folder, "SHIPPED_DIR", dirs.shipped)
    return dirs


@pytest.fixture
def in_chinese():
    """`with in_chinese() as zh:` runs its block with the session's language Chinese (attnviz.i18n), English again
    after it. zh(msgid, **values), or zh(singular, plural, count, **values), is what the zh catalog makes of that
    message: the text a message made inside the block must read. A message the catalog leaves in English fails there.
    (Page tests use tests/app's `chinese`, which keeps the whole test in Chinese.)"""
    from attnviz import i18n

    catalog = i18n.translations("zh")

    def zh(msgid, plural=None, count=1, /, **values):
        translated = catalog.gettext(msgid) if plural is None else catalog.ngettext(msgid, plural, count)
        assert translated != msgid, f"the zh catalog has no translation of {msgid!r}"
        return translated.format(**values)

    @contextlib.contextmanager
    def in_chinese():
        i18n.use_language("zh")
        try:
            yield zh
        finally:
            i18n.use_language(i18n.SOURCE_LANGUAGE)

    return in_chinese


@pytest.fixture(autouse=True)
def no_training_thread_left():
    """Stop every run of the process-wide registry, then join any `attnviz-train-*` thread still alive."""
    yield
    runs = sys.modules.get("attnviz.training.runs")  # only if a test used it: importing it here would cost time
    if runs is not None:
        runs.REGISTRY.stop_all()
    executor = sys.modules.get("attnviz.training.executor")
    if executor is not None and executor._LOCAL is not None:  # idle workers may stay; none may still train
        deadline = time.monotonic() + 10
        while executor._LOCAL.n_busy and time.monotonic() < deadline:
            time.sleep(0.05)
        if executor._LOCAL.n_busy:
            pytest.fail(f"{executor._LOCAL.n_busy} worker processes still train 10 s after the test ended")
    leftovers = [t for t in threading.enumerate() if t.name.startswith("attnviz-train")]
    for thread in leftovers:
        thread.join(timeout=10)
    alive = [t.name for t in leftovers if t.is_alive()]
    if alive:
        pytest.fail(f"training threads still running 10 s after the test asked them to stop: {alive}")


def wait_for(run, reached=None, timeout=60.0, what="its end"):
    """Poll `run.snapshot()` until `reached(snapshot)` (default: the run's thread has ended); fail at once with the
    run's own error when it fails or diverges, and after `timeout` seconds in any case (a bound against hanging,
    not a speed claim)."""
    reached = reached or (lambda snapshot: run.done)
    deadline = time.monotonic() + timeout
    while True:
        snapshot = run.snapshot()
        if snapshot.status in ("failed", "diverged"):
            pytest.fail(f"run {run.name!r} ended {snapshot.status} waiting for {what}: {snapshot.error}")
        if reached(snapshot):
            return snapshot
        if not run.thread.is_alive() and not reached(run.snapshot()):  # ended (done, stopped) without reaching it
            pytest.fail(f"run {run.name!r} ended {snapshot.status} at step {snapshot.step} before {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"run {run.name!r} did not reach {what} in {timeout:g} s (status {snapshot.status}, "
                        f"step {snapshot.step})")
        time.sleep(0.01)


@pytest.fixture
def wait_for_run():
    """wait_for_run(run, lambda snap: snap.step >= 3, timeout=60), or wait_for_run(run) for its end: see `wait_for`."""
    return wait_for


def until(condition, timeout, what):
    """Poll `condition()` until it holds; fail naming `what` after `timeout` seconds (a bound against hanging)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout} s")
        time.sleep(0.05)


@pytest.fixture
def wait_until():
    """wait_until(lambda: worker.is_alive(), 120, "the worker's start"): see `until`."""
    return until


def pytest_collection_modifyitems(config, items):
    """Tests marked `cuda` skip, with that reason, on a machine without a CUDA GPU (the count shows in the summary)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
