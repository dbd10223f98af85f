"""padding_check on a briefly trained Transformer: the mask marks exactly the positions past each input's own tokens,
padding changes no logit at a real position, and leaving the mask out does (the check can fail)."""
import pytest
import torch

from attnviz import build_model
from attnviz.data.tasks import make_task
from attnviz.interpret.padding import padding_check
from attnviz.models.architectures import model_config
from attnviz.training import checkpoint, checkpoint_folder
from attnviz.training.config import TrainConfig
from attnviz.training.loop import train

TEXTS = ["ab", "abcdefg", "cab", "bbbbbbbbbb"]


@pytest.fixture(scope="module")
def trained():
    task = make_task("reverse", min_len=2, max_len=10, alphabet="abc", n_train=300, n_val=8, n_test=8)
    torch.manual_seed(0)
    model = build_model(model_config("transformer", task.tokenizer, d_model=16, n_heads=2, d_ff=32))
    train(model, task, TrainConfig(steps=40, batch_size=16, lr=1e-2, warmup=5, eval_every=1000, snapshot_every=0,
                                   device="cpu"))
    return model.eval(), task


def test_the_mask_marks_exactly_the_padding(trained):
    model, task = trained
    check = padding_check(model, TEXTS, task)
    lengths = [len(task.tokenizer.encode(text)) + 1 for text in TEXTS]  # the letters and EOS
    width = max(lengths)
    assert check.src.shape == check.key_padding_mask.shape == (len(TEXTS), width)
    for row, length in enumerate(lengths):
        assert check.key_padding_mask[row].tolist() == [position >= length for position in range(width)]
        assert check.src_labels[row][length:] == ["<pad>"] * (width - length)
        assert check.src[row, :length].tolist() == task.encode_source(TEXTS[row])[0].tolist()
    assert list(check.table["padding"]) == [width - length for length in lengths]


def test_padding_changes_nothing_and_the_mask_is_why(trained):
    model, task = trained
    table = padding_check(model, TEXTS, task).table.set_index("input")
    assert (table["max |difference|"] <= 1e-5).all()
    padded = table[table["padding"] > 0]
    assert len(padded) == 3 and (padded["without the mask"] > 1e-3).all()  # PAD read as a token changes outputs
    assert table.loc["bbbbbbbbbb", "without the mask"] <= 1e-5  # the longest has no padding to read


def test_the_shared_model_keeps_its_precision(trained):
    model, task = trained
    padding_check(model, TEXTS[:2], task)
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_refuses_one_input_and_a_recurrent_model(trained):
    model, task = trained
    with pytest.raises(ValueError, match="at least two"):
        padding_check(model, ["abc"], task)
    lstm = build_model(model_config("lstm", task.tokenizer, embed_dim=8, hidden_size=8)).eval()
    with pytest.raises(ValueError, match="Transformer encoder-decoder"):
        padding_check(lstm, TEXTS, task)


def test_on_the_shipped_transformer():
    shipped = checkpoint.load_checkpoint(checkpoint_folder.SHIPPED_DIR / "reverse-long-transformer")
    table = padding_check(shipped.model, ["abc", "the quick brown fox", "hello"], shipped.task()).table
    assert (table["max |difference|"] <= 1e-5).all()
    assert (table[table["padding"] > 0]["without the mask"] > 1e-3).all()
