"""One model on two processes: torchrun with gloo on the CPU trains the weights one process trains on the whole
batch, and only rank 0 speaks and saves."""
import argparse
import copy
import os
import subprocess
import sys

from attnviz import cli
from attnviz.training.checkpoint import load_checkpoint
from attnviz.training.loop import train

# 15 rows: the two shards differ in rows (8 and 7) and in padding, which the token weighting must undo.
ARGS = ["train", "--task", "reverse", "--task-param", "n_train=500", "--task-param", "n_val=50", "--task-param",
        "n_test=50", "--size", "d_model=32", "--size", "n_heads=2", "--size", "d_ff=64", "--steps", "20",
        "--batch-size", "15", "--device", "cpu", "--name", "ddp"]


def plan():
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    return cli.training_plan(parser.parse_args(ARGS))


def largest_difference(a, b, names=lambda name: True):
    return max((x - y).abs().max().item() for (name, x), y in zip(a.state_dict().items(), b.state_dict().values())
               if names(name))


def is_key_bias(name):
    """A key's bias adds the same q.b to every score of a query, which softmax ignores: its gradient is 0 in exact
    arithmetic, rounding noise in floats, and AdamW turns noise of either sign into steps of +-lr. So it is the one
    weight two exact runs may not share; it changes no output."""
    return name.endswith("k_proj.bias")


def test_torchrun_on_two_gloo_processes_trains_the_weights_of_one_process(tmp_path):
    env = {**os.environ, "ATTNVIZ_USER_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
                           "-m", "attnviz", *ARGS], env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("saved ") == 1 and done.stdout.count("training transformer") == 1, done.stdout
    assert "on 2 processes" in done.stdout
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == ["ddp"]  # one checkpoint

    task, model, config, _, _ = plan()  # the same run in one process, on the whole batch
    assert model.config.dropout == 0  # so the two runs are deterministic and can be compared
    initial = copy.deepcopy(model)
    reference = train(model, task, config)
    trained = load_checkpoint(str(tmp_path / "ddp"))
    worst = largest_difference(trained.model, model, lambda name: not is_key_bias(name))
    moved = largest_difference(initial, model)
    assert worst <= 1e-5 < moved, (worst, moved)  # the same weights, and training did move them
    batch = task.collate(task.examples("val")[:32])
    logits = [m.eval().logits(batch.src, batch.tgt_in) for m in (trained.model, model)]  # (B, T, V) each
    assert (logits[0] - logits[1]).abs().max().item() <= 1e-5  # the key biases too: they change no output
    logged = trained.meta["history"]
    assert logged["step"] == list(range(1, 21))  # the whole batch's loss, not rank 0's shard's
    assert max(abs(a - b) for a, b in zip(logged["loss"], reference.history["loss"])) <= 1e-5
