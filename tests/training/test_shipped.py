"""Every shipped checkpoint loads and, re-evaluated on its own test split, gives the metrics it records."""
import pytest

from attnviz.training.checkpoint import SHIPPED_DIR, list_checkpoints, load_checkpoint
from attnviz.data.stdlib import code_documents, prose_documents
from attnviz.interpret.continuations import PROMPTS, continue_prompt, real_word_share
from attnviz.training.evaluation import baseline_bits_per_char
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
    "prose-lm": ("token_accuracy", 0.3),
    "code-lm": ("token_accuracy", 0.35),
}


def test_every_expected_model_ships():
    shipped = {info.name for info in list_checkpoints([SHIPPED_DIR])}
    assert set(EXPECTED) <= shipped


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shipped_checkpoint_reproduces_its_recorded_metrics(name):
    checkpoint = load_checkpoint(SHIPPED_DIR / name)
    recorded = {k: v for k, v in checkpoint.meta["metrics"].items() if k != "baseline_bits_per_char"}  # see below
    measured = evaluate(checkpoint.model, checkpoint.task(), "test")
    assert set(measured) == set(recorded)
    for metric, value in measured.items():
        assert value == pytest.approx(recorded[metric], rel=1e-4, abs=1e-6), metric
    metric, floor = EXPECTED[name]
    assert measured[metric] >= floor


@pytest.mark.parametrize("name", ["prose-lm", "code-lm"])
def test_language_models_beat_a_character_ngram_and_write_real_words(name):
    """The promise of checkpoints/README.md: bits per character well under the n-gram baseline measured in the
    same run on the same split, and greedy continuations of the five fixed prompts made of corpus words."""
    checkpoint = load_checkpoint(SHIPPED_DIR / name)
    task = checkpoint.task()
    baseline = baseline_bits_per_char(task)
    assert baseline == pytest.approx(checkpoint.meta["metrics"]["baseline_bits_per_char"], rel=1e-9)
    assert checkpoint.meta["metrics"]["bits_per_char"] < 0.9 * baseline
    kind = name.split("-")[0]
    texts = [continue_prompt(checkpoint.model, checkpoint.tokenizer, prompt) for prompt in PROMPTS[kind]]
    corpus = "\n".join(text for _, text in (prose_documents() if kind == "prose" else code_documents()))
    share, words = real_word_share(texts, corpus)
    assert words >= 50 and share >= 0.9
