"""Bits per character of a language model, recomputed by hand, and the n-gram baseline recorded beside it."""
import math

import pytest
import torch
import torch.nn.functional as F

from attnviz.data.tasks import make_task
from attnviz.models import TransformerConfig, build_model
from attnviz.models.ngram import CharNGram
from attnviz.training.evaluation import baseline_bits_per_char, evaluate_split, position_losses


@pytest.fixture(scope="module")
def lm():
    task = make_task("text", text="".join(f"line {i} says hello to the world.\n" for i in range(200)), block_size=16)
    torch.manual_seed(0)
    model = build_model(TransformerConfig(task.tokenizer.vocab_size, task.tokenizer.vocab_size, d_model=16, n_heads=2,
                                          n_encoder_layers=0, d_ff=32, max_len=32)).eval()
    return task, model


def test_bits_per_char_is_the_summed_loss_in_bits_over_the_characters(lm):
    task, model = lm
    nats, chars = 0.0, 0
    with torch.no_grad():
        for block in task.test:
            tokens = torch.tensor([[task.tokenizer.bos_id, *block]])
            logits = model(tokens[:, :-1])  # (1, T, V)
            nats += F.cross_entropy(logits[0], tokens[0, 1:], reduction="sum").item()
            chars += len(task.tokenizer.decode(block))
    assert evaluate_split(model, task, "test")["bits_per_char"] == pytest.approx(nats / math.log(2) / chars)


def test_position_losses_are_per_token_cross_entropy(lm):
    task, model = lm
    batch = task.collate(task.test[:3])
    with torch.no_grad():
        expected = F.cross_entropy(model(batch.tgt_in).transpose(1, 2), batch.tgt_out, reduction="none")
    torch.testing.assert_close(position_losses(model, batch), expected * (batch.tgt_out != 0))


def test_baseline_is_the_ngram_fitted_on_train_and_scored_on_test(lm):
    task, _ = lm
    text = lambda split: "".join(task.tokenizer.decode(b) for b in task.examples(split))
    assert baseline_bits_per_char(task) == pytest.approx(CharNGram(5).fit(text("train")).bits_per_char(text("test")))
