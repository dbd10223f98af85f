"""Shared test set-up: a throw-away user checkpoint folder, seeded RNGs, no training thread left behind."""
import os
import random
import shutil
import sys
import tempfile
import threading

import numpy as np
import pytest
import torch

# Set before anything imports attnviz.checkpoint (it reads the variable once), and inherited by the
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
    shutil.rmtree(USER_DIR, ignore_errors=True)


@pytest.fixture(autouse=True)
def seeded():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture
def make_checkpoint():
    """make_checkpoint(folder, task=...) saves a tiny untrained Transformer there and returns the model.

    The folders are deleted after the test (USER_DIR is shared by the whole session).
    """
    from attnviz import TransformerConfig, build_model
    from attnviz.data.tokenizers import CharTokenizer
    from attnviz.training.checkpoint import save_checkpoint

    made = []

    def make(folder, task="reverse", metrics=None):
        tokenizer = CharTokenizer("abc")
        config = TransformerConfig(tokenizer.vocab_size, tokenizer.vocab_size, d_model=8, n_heads=2, d_ff=16)
        model = build_model(config)
        meta = {"task": {"name": task}, "metrics": metrics or {"exact_match": 0.5, "token_accuracy": 0.75}}
        made.append(save_checkpoint(folder, model, tokenizer, meta))
        return model

    yield make
    for folder in made:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(autouse=True)
def no_training_thread_left():
    """Stop every run of the process-wide registry, then join any `attnviz-train-*` thread still alive."""
    yield
    runs = sys.modules.get("attnviz.training.runs")  # only if a test used it: importing it here would cost time
    if runs is not None:
        runs.REGISTRY.stop_all()
    leftovers = [t for t in threading.enumerate() if t.name.startswith("attnviz-train")]
    for thread in leftovers:
        thread.join(timeout=10)
    alive = [t.name for t in leftovers if t.is_alive()]
    if alive:
        pytest.fail(f"training threads still running 10 s after the test asked them to stop: {alive}")
