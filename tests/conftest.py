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


def pytest_unconfigure(config):
    shutil.rmtree(USER_DIR, ignore_errors=True)


@pytest.fixture(autouse=True)
def seeded():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def no_training_thread_left():
    """Stop every run of the process-wide registry, then join any `attnviz-train-*` thread still alive."""
    yield
    train = sys.modules.get("attnviz.train")  # only if a test used it: importing it here would cost time
    if train is not None:
        train.REGISTRY.stop_all()
    leftovers = [t for t in threading.enumerate() if t.name.startswith("attnviz-train")]
    for thread in leftovers:
        thread.join(timeout=10)
    alive = [t.name for t in leftovers if t.is_alive()]
    if alive:
        pytest.fail(f"training threads still running 10 s after the test asked them to stop: {alive}")
