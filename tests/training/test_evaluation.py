"""The one evaluation is fp32 even inside a caller's bf16 autocast block, so recorded metrics re-evaluate equal."""
import pytest
import torch

from attnviz.data.tasks import make_task
from attnviz.training.config import TrainConfig
from attnviz.training.evaluation import evaluate, evaluate_split
from attnviz.training.loop import train
from attnviz.training.presets import build


@pytest.fixture(scope="module")
def trained():
    task = make_task("reverse", seed=0, min_len=3, max_len=5, alphabet="abcdef", n_train=500, n_val=100, n_test=100)
    torch.manual_seed(0)
    model = build(task, "transformer", {"d_model": 32, "n_heads": 2, "d_ff": 64})[0]
    train(model, task, TrainConfig(steps=60, batch_size=32, lr=1e-2, warmup=10, eval_every=60, snapshot_every=0,
                                   device="cpu"))
    return task, model


def test_metrics_inside_an_active_bf16_autocast_equal_the_fp32_metrics(trained):
    task, model = trained
    fp32 = evaluate_split(model, task, "test")
    batch = next(task.batches("test", 64))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert model.logits(batch.src, batch.tgt_in).dtype == torch.bfloat16  # the block really casts
        inside = evaluate_split(model, task, "test")
        probs = evaluate(model, [batch], keep_probs=True)["probs"][0]
    assert inside == fp32  # exactly: the same fp32 computation
    assert probs.dtype == torch.float32
    with torch.no_grad():
        torch.testing.assert_close(probs, model.logits(batch.src, batch.tgt_in).softmax(-1), atol=0, rtol=0)
