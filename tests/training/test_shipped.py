"""Every shipped checkpoint loads and, re-evaluated on its own test split, gives the metrics it records."""
import pytest

from attnviz.training.checkpoint import SHIPPED_DIR, list_checkpoints, load_checkpoint
from attnviz.training.evaluation import evaluate_split as evaluate

EXPECTED = {  # name: (metric, at least) — what the pages and the README promise of them
    "reverse-transformer": ("exact_match", 0.99),
    "reverse-lstm-bahdanau": ("exact_match", 0.99),
    "reverse-lstm": ("exact_match", 0.0),  # no attention: it is there to fall short
    "reverse-long-transformer": ("exact_match", 0.97),  # lengths 4-24: the length result of Bahdanau et al.
    "reverse-long-lstm-bahdanau": ("exact_match", 0.97),
    "reverse-long-lstm": ("exact_match", 0.0),
    "dates-transformer": ("exact_match", 0.99),
    "dates-lstm-bahdanau": ("exact_match", 0.99),
    "dates-lstm": ("exact_match", 0.0),
    "pydoc-lm": ("token_accuracy", 0.3),
}


def test_every_expected_model_ships():
    shipped = {info.name for info in list_checkpoints([SHIPPED_DIR])}
    assert set(EXPECTED) <= shipped


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shipped_checkpoint_reproduces_its_recorded_metrics(name):
    checkpoint = load_checkpoint(SHIPPED_DIR / name)
    recorded = checkpoint.meta["metrics"]
    measured = evaluate(checkpoint.model, checkpoint.task(), "test")
    assert set(measured) == set(recorded)
    for metric, value in measured.items():
        assert value == pytest.approx(recorded[metric], rel=1e-4, abs=1e-6), metric
    metric, floor = EXPECTED[name]
    assert measured[metric] >= floor
