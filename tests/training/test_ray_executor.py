"""Runs on a local Ray of two CPUs: the weights of a local worker, stop, Ray's queue, a killed actor, one registry
for two servers, and no Ray at all unless $ATTNVIZ_RAY_ADDRESS asks for it."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest
import ray
import torch

from attnviz.app.train_view import runs_table
from attnviz.data.tasks import make_task
from attnviz.training import executor, ray_executor, run_board
from attnviz.training.config import TrainConfig
from attnviz.training.job import Job
from attnviz.training.loop import TrainResult, train
from attnviz.training.presets import build
from attnviz.training.runs import RunRegistry, TrainingRun


@pytest.fixture(scope="module")
def cluster():
    """A local Ray with two CPUs and no dashboard, in a short temporary folder (its socket paths must be short)."""
    folder = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    ray.init(num_cpus=2, include_dashboard=False, namespace=run_board.NAMESPACE, log_to_driver=False,
             _temp_dir=folder)
    yield ray_executor.RayExecutor(weights_every=0.3)
    ray_executor._EXECUTORS.clear()
    ray.shutdown()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def task():
    return make_task("reverse", seed=0, min_len=3, max_len=5, alphabet="abcdef", n_train=2000, n_val=200, n_test=200)


def tiny(task):
    return build(task, "transformer", {"d_model": 32, "n_heads": 2, "d_ff": 64})[0]


def config(**overrides):
    return TrainConfig(**{"steps": 40, "batch_size": 32, "lr": 1e-2, "warmup": 5, "eval_every": 20,
                          "snapshot_every": 10, "device": "cpu", **overrides})


def forever():
    return config(steps=10**6, snapshot_every=0)


def same_weights(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_a_run_on_ray_trains_bitwise_the_weights_of_a_local_worker(cluster, task):
    on_ray = TrainingRun(tiny(task), task, config(), name="on-ray", registry=RunRegistry(2), executor=cluster).start()
    local = TrainingRun(tiny(task), task, config(), name="local", registry=RunRegistry(2),
                        executor=executor.local_executor()).start()
    on_ray.join(120)
    local.join(120)
    assert on_ray.result.status == "done" and local.result.status == "done", (on_ray.result.error, local.result.error)
    assert same_weights(on_ray.model, local.model)
    snap = on_ray.snapshot()  # history, evaluations and attention patterns came through the actor's polls
    assert snap.history["step"] == list(range(1, 41)) and snap.evals["step"] == [20, 40]
    assert [s["step"] for s in snap.snapshots] == [1, 10, 20, 30, 40]
    assert snap.node == ray.util.get_node_ip_address() and on_ray.test_metrics == local.test_metrics


def test_ray_queues_a_run_until_a_cpu_is_free_and_stop_works_there_and_while_training(cluster, task, wait_until):
    registry = RunRegistry(10)  # no cap of ours: the two CPUs of the cluster are the cap
    busy = [TrainingRun(tiny(task), task, forever(), name=f"busy-{i}", registry=registry, executor=cluster).start()
            for i in range(2)]
    wait_until(lambda: all(run.snapshot().step >= 3 for run in busy), 120, "two runs training")
    waiting = TrainingRun(tiny(task), task, forever(), name="waiting", registry=registry, executor=cluster).start()
    time.sleep(2)  # time enough to start, were there a CPU
    snap = waiting.snapshot()
    assert snap.status == "queued" and snap.queue_position == 0 and snap.node == "" and snap.step == 0
    waiting.stop(timeout=30)
    assert waiting.done and waiting.snapshot().status == "stopped"
    asked = time.monotonic()
    for run in busy:
        run.stop(timeout=30)
    assert time.monotonic() - asked < 60 and all(run.done and run.snapshot().status == "stopped" for run in busy)
    assert all(3 <= run.snapshot().step < 10**6 for run in busy)


def test_a_killed_actor_fails_its_run_as_worker_lost_and_keeps_its_last_weights(cluster, task, wait_until):
    victim = TrainingRun(tiny(task), task, forever(), name="victim", registry=RunRegistry(2), executor=cluster).start()
    wait_until(lambda: victim.handle is not None and (victim.handle.kept_step or 0) >= 3, 120, "a copy of weights")
    os.kill(victim.handle.pid, signal.SIGKILL)
    victim.join(60)
    snap = victim.snapshot()
    assert victim.done and snap.status == "failed" and snap.error.startswith("worker lost"), snap.error
    kept = victim.handle.kept_step
    assert f"step {kept} are kept" in snap.error
    reference, record = tiny(task), TrainResult()
    train(reference, task, forever(), record, should_stop=lambda: record.step >= kept)  # the first `kept` steps
    assert same_weights(victim.model, reference)
    after = TrainingRun(tiny(task), task, config(steps=5, snapshot_every=0), name="after", registry=RunRegistry(2),
                        executor=cluster).start()
    after.join(120)  # the cluster goes on
    assert after.snapshot().status == "done"


def test_two_servers_see_one_run_through_the_named_registry(cluster, task, monkeypatch, wait_until):
    run = TrainingRun(tiny(task), task, forever(), name="shared", owner="ada-browser-token", trained_by="Ada",
                      registry=RunRegistry(2), executor=cluster).start()
    other = run_board.connect(server="another-web-node")  # a second server's client of the same detached actor
    wait_until(lambda: any(r["name"] == "shared" and r["step"] >= 3 for r in other.runs()), 120, "the run seen")
    seen = next(r for r in other.runs() if r["name"] == "shared")
    assert "ada-browser-token" not in str(seen)  # other servers see who trained it, never the owner's token
    assert seen["owner"] == "Ada" and seen["status"] == "running" and seen["node"] == ray.util.get_node_ip_address()
    monkeypatch.setenv(executor.RAY_ADDRESS_VARIABLE, "auto")
    table = runs_table("bob-browser-token", RunRegistry(1))  # Train live on a server that did not start the run
    assert "shared" in table["model"].tolist()
    job = Job.of(tiny(task), task, forever(), name="shared", owner="bob")
    with pytest.raises(ValueError, match="training on another server"):
        other.claim(job)
    run.stop("ada-browser-token", timeout=30)
    wait_until(lambda: next(r for r in other.runs() if r["name"] == "shared")["status"] == "stopped", 30,
               "the end seen")
    other.claim(job)  # an ended run's name may be taken again


def test_the_address_variable_alone_brings_in_ray(cluster, monkeypatch):
    monkeypatch.setenv(executor.RAY_ADDRESS_VARIABLE, "auto")
    assert isinstance(executor.default_executor(), ray_executor.RayExecutor) and executor.default_slots() >= 10**6
    code = ("import sys; from attnviz.training.runs import REGISTRY, TrainingRun; "
            "from attnviz.training.executor import LocalExecutor, default_executor; "
            "assert isinstance(default_executor(), LocalExecutor); assert 'ray' not in sys.modules, 'ray imported'")
    env = {k: v for k, v in os.environ.items() if k != executor.RAY_ADDRESS_VARIABLE}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_the_cli_trains_on_ray_from_another_process_and_the_registry_shows_it(cluster, tmp_path):
    address = ray.get_runtime_context().gcs_address  # a second driver joins the fixture's cluster, as a server would
    env = {**os.environ, executor.RAY_ADDRESS_VARIABLE: address, "ATTNVIZ_USER_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "attnviz", "train", "--task", "reverse", "--task-param", "n_train=200",
                           "--size", "d_model=16", "--size", "n_heads=2", "--size", "d_ff=32", "--steps", "5",
                           "--device", "cpu", "--on-ray", "--name", "from-cli"], env=env, capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"trained on the cluster node {ray.util.get_node_ip_address()}" in done.stdout
    assert (tmp_path / "from-cli" / "model.safetensors").is_file()  # the weights came back and were saved there
    record = next(r for r in run_board.connect().runs() if r["name"] == "from-cli")
    assert record["status"] == "done" and record["step"] == 5
