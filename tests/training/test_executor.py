"""Runs in worker processes: the same weights as training here, stop, a killed worker, snapshots across the pipe."""
import os
import signal
import time

import pytest
import torch

from attnviz.data.tasks import make_task
from attnviz.training.executor import ThreadExecutor, local_executor
from attnviz.training.loop import train
from attnviz.training.presets import build
from attnviz.training.config import TrainConfig
from attnviz.training.runs import RunRegistry, TrainingRun
from attnviz.training.worker import NICENESS


@pytest.fixture(scope="module")
def task():
    return make_task("reverse", seed=0, min_len=3, max_len=5, alphabet="abcdef", n_train=2000, n_val=200, n_test=200)


def tiny(task, seed=0):
    torch.manual_seed(seed)
    return build(task, "transformer", {"d_model": 32, "n_heads": 2, "d_ff": 64})[0]


def config(**overrides):
    """Dropout is 0 in these models (the model config's default), so training is deterministic."""
    return TrainConfig(**{"steps": 40, "batch_size": 32, "lr": 1e-2, "warmup": 5, "eval_every": 20,
                          "snapshot_every": 10, "device": "cpu", **overrides})


def test_worker_trains_bitwise_the_weights_of_training_here(task):
    here = tiny(task)
    train(here, task, config())
    run = TrainingRun(tiny(task), task, config(), name="bitwise", registry=RunRegistry(1)).start()
    run.join(120)
    assert run.result.status == "done", run.result.error
    for (name, a), (_, b) in zip(here.state_dict().items(), run.model.state_dict().items()):
        assert torch.equal(a, b), name
    snap = run.snapshot()  # history, evaluations and attention patterns came over the pipe
    assert snap.history["step"] == list(range(1, 41)) and len(snap.history["loss"]) == 40
    assert snap.evals["step"] == [20, 40] and "exact_match" in snap.metrics
    assert [s["step"] for s in snap.snapshots] == [1, 10, 20, 30, 40]
    patterns = snap.snapshots[-1]["patterns"]
    assert patterns and all(p.shape[:2] == (len(task.probes), 2) for p in patterns.values())
    assert abs(next(iter(patterns.values())).astype("float32").sum(-1) - 1).max() < 2e-3


def test_thread_executor_trains_the_same_weights(task):
    here = tiny(task)  # one after the other: the loop still seeds torch's global generator
    train(here, task, config(snapshot_every=0))
    threaded = TrainingRun(tiny(task), task, config(snapshot_every=0), name="threaded", registry=RunRegistry(1),
                           executor=ThreadExecutor()).start()
    threaded.join(120)
    assert all(torch.equal(a, b) for a, b in zip(here.parameters(), threaded.model.parameters()))


def test_stop_ends_a_worker_run_within_a_deadline(task, wait_until):
    run = TrainingRun(tiny(task), task, config(steps=10**6, snapshot_every=0), name="stop-me",
                      registry=RunRegistry(1)).start()
    wait_until(lambda: run.snapshot().step >= 3, 120, "the first steps")
    asked = time.monotonic()
    run.stop(timeout=30)
    assert not run.thread.is_alive() and time.monotonic() - asked < 30
    assert run.snapshot().status == "stopped" and 3 <= run.snapshot().step < 10**6


def test_a_killed_worker_fails_its_run_only(task, wait_until, in_chinese):
    registry = RunRegistry(2)
    victim = TrainingRun(tiny(task), task, config(steps=10**6, snapshot_every=0), name="victim",
                         registry=registry).start()
    other = TrainingRun(tiny(task), task, config(steps=60, snapshot_every=0), name="bystander",
                        registry=registry).start()
    wait_until(lambda: victim.snapshot().step >= 2 and victim.handle is not None, 120, "the victim's first steps")
    os.kill(victim.handle.worker.process.pid, signal.SIGKILL)
    victim.join(30)
    other.join(120)
    assert victim.snapshot().status == "failed" and "worker lost" in victim.snapshot().error
    with in_chinese() as zh:  # worded by this server's reader thread, shown in the language of the page that asks
        assert victim.snapshot().error == zh("worker lost: the training process ended unexpectedly (exit code "
                                             "{code}); start the run again", code=-signal.SIGKILL)
    assert other.snapshot().status == "done"
    after = TrainingRun(tiny(task), task, config(steps=5, snapshot_every=0), name="after", registry=registry).start()
    after.join(120)  # the pool goes on with a fresh worker
    assert after.snapshot().status == "done"


def test_workers_are_reused(task):
    pids = []
    for i in range(2):
        run = TrainingRun(tiny(task), task, config(steps=3, snapshot_every=0), name=f"reuse{i}",
                          registry=RunRegistry(1)).start()
        run.join(120)
        pids.append(run.handle.worker.process.pid)
    assert pids[0] == pids[1] and local_executor().n_busy == 0


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="process priorities are Unix's")
def test_workers_train_below_the_servers_priority(task):
    run = TrainingRun(tiny(task), task, config(steps=3, snapshot_every=0), name="nice", registry=RunRegistry(1))
    run.start().join(120)
    assert run.snapshot().status == "done"
    worker, server = (os.getpriority(os.PRIO_PROCESS, pid) for pid in (run.handle.worker.process.pid, 0))
    assert worker == min(server + NICENESS, 19)


def test_a_loss_that_ends_above_its_first_loss_is_diverged_and_not_saved(task, tmp_path, monkeypatch):
    from attnviz.training import checkpoint_folder
    monkeypatch.setattr(checkpoint_folder, "USER_DIR", tmp_path)
    run = TrainingRun(tiny(task), task, config(steps=30, lr=1.0, warmup=0, clip=0.0, snapshot_every=0),
                      name="too-fast", save=True, registry=RunRegistry(1)).start()
    run.join(120)
    snap = run.snapshot()
    losses = snap.history["loss"]
    assert sum(losses[-10:]) / 10 > losses[0]  # what the check looks at (a learning rate of 1.0 makes it so)
    assert snap.status == "diverged" and "lower the learning rate" in snap.error and snap.saved_path == ""
    assert not (tmp_path / "too-fast").exists()
    assert run.save_anyway() == str(tmp_path / "too-fast") and (tmp_path / "too-fast" / "meta.json").is_file()


def test_a_preset_that_ends_at_exact_match_zero_is_diverged():
    from attnviz.training.loop import TrainResult
    from attnviz.training.runs import check_divergence
    result = TrainResult(status="done", step=350, metrics={"exact_match": 0.0})
    result.history["loss"] = [3.0, 2.0, 1.5]
    check_divergence(result, TrainConfig(steps=350, lr=7e-3), "reverse-transformer", "reverse")
    assert result.status == "diverged" and "exact match is 0" in result.error
    fine = TrainResult(status="done", step=350, metrics={"exact_match": 0.9})
    fine.history["loss"] = [3.0, 2.0, 1.5]
    assert check_divergence(fine, TrainConfig(steps=350), "reverse-transformer", "reverse").status == "done"


def test_a_runs_own_message_is_english_in_its_record_and_in_the_pages_language_in_its_snapshot(task, in_chinese):
    from attnviz.training.runs import check_divergence
    run = TrainingRun(tiny(task), task, config(lr=0.5), name="wild", registry=RunRegistry(1))  # never started
    run.result.status, run.result.history["loss"] = "done", [1.0, 2.0]
    with in_chinese() as zh:  # the run's own thread has no session: what it words is English, whatever the pages read
        check_divergence(run.result, run.config)
        shown = run.snapshot().error
    assert run.result.error == run.snapshot().error == (
        "The run diverged: the loss at the end (1.5) is above its first loss (1). It was not saved; lower the "
        "learning rate (it was 0.5) and start again, or save it anyway.")  # as the command line prints it
    why = zh("the loss at the end ({end}) is above its first loss ({first})", end="1.5", first="1")
    assert shown == zh("The run diverged: {why}. It was not saved; lower the learning rate (it was {lr}) and start "
                       "again, or save it anyway.", why=why, lr="0.5")
