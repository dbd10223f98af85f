"""Every shipped checkpoint loads and, re-evaluated on its own test split, gives the metrics it records; and the
claim the comparison page makes holds: on each shipped task the attention models beat the plain LSTM clearly."""
import functools

import pytest

from attnviz.interpret.contenders import LABELS, TASKS, checkpoint_name
from attnviz.training.checkpoint import SHIPPED_DIR, list_checkpoints, load_checkpoint
from attnviz.training.evaluation import evaluate_split as evaluate

ATTENTION = [a for a in LABELS if a != "lstm"]  # the Transformer and the LSTM with attention
FLOORS = {"reverse": 0.99, "reverse-long": 0.97, "dates": 0.99}  # exact match the pages and the README promise
# "A clear margin", the same on every task: at least 0.15 more exact match, and at most a quarter of the plain
# LSTM's wrong answers. Measured (test split): reverse 1.0 / 1.0 vs 0.258, reverse-long 0.988 / 0.986 vs 0.422,
# dates 1.0 / 1.0 vs 0.814 (so dates falls short of a 0.3 absolute margin: the plain LSTM gets most dates right).
MARGIN, ERROR_RATIO = 0.15, 0.25
SEQ2SEQ = {checkpoint_name(task, a): (task, a) for task in TASKS for a in LABELS}
EXPECTED = sorted(SEQ2SEQ) + ["pydoc-lm"]


@functools.cache
def measured(name):
    checkpoint = load_checkpoint(SHIPPED_DIR / name)
    return checkpoint.meta["metrics"], evaluate(checkpoint.model, checkpoint.task(), "test")


def test_every_expected_model_ships():
    assert set(TASKS) == set(FLOORS)
    shipped = {info.name for info in list_checkpoints([SHIPPED_DIR])}
    assert set(EXPECTED) <= shipped


@pytest.mark.parametrize("name", EXPECTED)
def test_shipped_checkpoint_reproduces_its_recorded_metrics(name):
    recorded, metrics = measured(name)
    assert set(metrics) == set(recorded)
    for metric, value in metrics.items():
        assert value == pytest.approx(recorded[metric], rel=1e-4, abs=1e-6), metric


@pytest.mark.parametrize("task", sorted(TASKS))
def test_attention_models_beat_the_plain_lstm_by_a_clear_margin(task):
    plain = measured(checkpoint_name(task, "lstm"))[1]["exact_match"]
    for architecture in ATTENTION:
        exact = measured(checkpoint_name(task, architecture))[1]["exact_match"]
        assert exact >= FLOORS[task], architecture
        assert exact - plain >= MARGIN, (architecture, exact, plain)
        assert 1 - exact <= ERROR_RATIO * (1 - plain), (architecture, exact, plain)


def test_the_language_model_predicts_well_above_chance():
    assert measured("pydoc-lm")[1]["token_accuracy"] >= 0.3
