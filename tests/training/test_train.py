import math
import threading
import time

import pytest
import torch

from attnviz import build_model
from attnviz.data.tasks import make_task
from attnviz.models.architectures import check_size, model_config, parameter_count
from attnviz.training.config import TrainConfig
from attnviz.training.evaluation import evaluate_split as evaluate
from attnviz.training.loop import learning_rate, train
from attnviz.training.presets import PRESETS, build, build_preset
from attnviz.training.runs import RunRegistry, TrainingRun

TINY = {"d_model": 32, "n_heads": 2, "d_ff": 64}


@pytest.fixture(scope="module")
def task():
    return make_task("reverse", seed=0, min_len=3, max_len=5, alphabet="abcdef", n_train=2000, n_val=200, n_test=200)


def tiny_model(task, seed=0, architecture="transformer"):
    torch.manual_seed(seed)
    return build(task, architecture, TINY if architecture == "transformer" else {})[0]


def quick(**overrides):
    return TrainConfig(**{"steps": 300, "batch_size": 32, "lr": 1e-2, "warmup": 20, "eval_every": 100,
                          "snapshot_every": 0, "device": "cpu", **overrides})


def test_training_learns_tiny_reverse(task):
    model = tiny_model(task)
    before = evaluate(model, task, "val")
    result = train(model, task, quick())
    after = evaluate(model, task, "test")
    assert result.status == "done" and result.step == 300
    assert after["loss"] < before["loss"] / 5
    assert after["exact_match"] >= 0.9, after


def test_exact_match_equals_greedy_decoding(task):
    """evaluate() counts teacher-forced all-correct rows; that must equal decoding each source greedily."""
    from attnviz.decoding.search import greedy
    model = tiny_model(task)
    train(model, task, quick(steps=120))
    model.eval()
    examples = task.test[:60]
    decoded = [task.tokenizer.decode(greedy(model, task.tokenizer, task.encode_source(src), 12, trace=False).ids())
               for src, _ in examples]
    by_decoding = sum(out == tgt for out, (_, tgt) in zip(decoded, examples)) / len(examples)
    small = make_task("reverse", seed=0, min_len=3, max_len=5, alphabet="abcdef", n_train=2000, n_val=200, n_test=200)
    small.test = examples
    assert 0 < by_decoding < 1  # a half-trained model, so the comparison can fail
    assert evaluate(model, small, "test")["exact_match"] == pytest.approx(by_decoding)


def test_same_seed_same_curve(task):
    curves = [train(tiny_model(task, seed=3), task, quick(steps=40, seed=3)).history["loss"] for _ in range(2)]
    assert curves[0] == curves[1]
    other = train(tiny_model(task, seed=4), task, quick(steps=40, seed=4)).history["loss"]
    assert other != curves[0]


def test_schedule_warms_up_then_decays():
    config = quick(steps=100, warmup=10, lr=1.0)
    lrs = [learning_rate(s, config) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[-1] == pytest.approx(0.1, abs=0.01)


def test_nan_loss_stops_and_keeps_last_good_weights(task):
    model = tiny_model(task)
    seen = []  # the weights each forward pass used
    model.register_forward_pre_hook(lambda m, a: seen.append({k: v.clone() for k, v in m.state_dict().items()}))
    forward = model.forward
    model.forward = lambda *args: forward(*args) * (float("nan") if len(seen) == 6 else 1.0)
    result = train(model, task, quick(steps=50))
    assert result.status == "diverged" and result.step == 6
    assert "Lower the learning rate" in result.error
    final = model.state_dict()
    assert all(torch.equal(final[k], seen[4][k]) for k in final)  # the weights of the last finite loss
    assert not all(torch.equal(final[k], seen[5][k]) for k in final)


def test_time_budget_and_target_stop_early(task):
    result = train(tiny_model(task), task, quick(steps=100000, time_budget=0.5))
    assert result.status == "done" and result.step < 100000
    reached = train(tiny_model(task), task, quick(steps=2000, eval_every=25, target_exact_match=0.5))
    assert reached.reached_target_at is not None and reached.metrics["exact_match"] >= 0.5 and reached.step < 2000


def test_snapshots_hold_every_pattern_of_the_probes(task):
    model = tiny_model(task)
    result = train(model, task, quick(steps=20, snapshot_every=10))
    assert [s["step"] for s in result.snapshots] == [1, 10, 20]
    probes = task.collate(task.probes)
    for name, pattern in result.snapshots[-1]["patterns"].items():
        assert pattern.shape[:2] == (len(task.probes), 2)
        assert pattern.shape[2] in (probes.src.shape[1], probes.tgt_in.shape[1])
        assert abs(pattern.astype("float32").sum(-1) - 1).max() < 2e-3


def test_training_run_stops_when_asked(task):
    run = TrainingRun(tiny_model(task), task, quick(steps=10**6), name="stopper", registry=RunRegistry(1)).start()
    while run.snapshot().step < 3:
        time.sleep(0.01)
    run.stop(timeout=60)  # a bound against hanging, not a speed claim (bench measures that)
    assert not run.thread.is_alive()
    snapshot = run.snapshot()
    assert snapshot.status == "stopped" and 3 <= snapshot.step < 10**6


def test_registry_caps_concurrency_and_serves_in_order(task):
    registry = RunRegistry(max_concurrent=2)
    started, peak, lock = [], [0], threading.Lock()
    active = [0]

    class Watch(TrainingRun):
        def _work(self):
            if not self.registry.acquire(self):
                return
            with lock:
                started.append(self.name)
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            time.sleep(0.05)
            with lock:
                active[0] -= 1
            self.registry.release()

    runs = [Watch(None, task, quick(), name=f"r{i}", registry=registry) for i in range(6)]
    for run in runs:
        run.start()  # joins the queue before its thread starts: arrival order is this order
    for run in runs:
        run.join(5)
    assert peak[0] == 2
    assert started == [f"r{i}" for i in range(6)]


def test_queued_run_sees_its_place_and_can_leave(task):
    registry = RunRegistry(max_concurrent=1)
    first = TrainingRun(tiny_model(task), task, quick(steps=10**6), name="a", registry=registry).start()
    second = TrainingRun(tiny_model(task), task, quick(steps=10), name="b", registry=registry).start()
    while first.snapshot().status != "running":  # then "a" holds the one slot and has left the queue
        time.sleep(0.01)
    assert second.snapshot().status == "queued" and second.snapshot().queue_position == 1
    second.stop()
    assert second.snapshot().status == "stopped"
    first.stop()
    assert registry.active == 0 and not registry.waiting


def test_finished_run_is_saved_and_loads(task, tmp_path, monkeypatch):
    from attnviz.training import checkpoint
    monkeypatch.setattr(checkpoint, "USER_DIR", tmp_path)
    run = TrainingRun(tiny_model(task), task, quick(steps=30, snapshot_every=10), name="saved-run", save=True,
                      registry=RunRegistry(1)).start()
    run.join(30)
    snap = run.snapshot()
    assert snap.status == "done" and snap.saved_path == str(tmp_path / "saved-run")
    loaded = checkpoint.load_checkpoint(tmp_path / "saved-run")
    assert loaded.meta["metrics"]["exact_match"] == pytest.approx(evaluate(loaded.model, task, "test")["exact_match"])
    assert len(loaded.meta["snapshots"]) == 4


def test_invalid_settings_name_the_field():
    for bad, field in [({"steps": 0}, "steps"), ({"lr": -1}, "lr"), ({"batch_size": 10**6}, "batch_size"),
                       ({"device": "tpu"}, "device"), ({"label_smoothing": 1.5}, "label_smoothing"),
                       ({"warmup": -1}, "warmup"), ({"snapshot_every": "5"}, "snapshot_every")]:
        with pytest.raises(ValueError, match=field):
            TrainConfig(**bad)
    with pytest.raises(ValueError, match="unknown TrainConfig keys"):
        TrainConfig.from_dict({"stepz": 3})


def test_size_limit_is_checked_without_allocating(task):
    config = model_config("transformer", task.tokenizer, d_model=1024, d_ff=8192, n_encoder_layers=8, n_decoder_layers=8)
    assert parameter_count(config) > 10**8
    with pytest.raises(ValueError, match="parameters"):
        check_size(config)
    small = model_config("transformer", task.tokenizer, **TINY)
    assert parameter_count(small) == sum(p.numel() for p in build_model(small).parameters())


def test_every_preset_builds_and_takes_a_step():
    for name in PRESETS:
        task, model, config = build_preset(name)
        assert model.has_encoder == (task.kind == "seq2seq")
        result = train(model, task, TrainConfig(**{**config.__dict__, "steps": 1, "eval_examples": 8, "snapshot_every": 1}))
        assert result.status == "done" and math.isfinite(result.history["loss"][0])


def test_architecture_must_fit_the_task(task):
    with pytest.raises(ValueError, match="does not fit"):
        build(task, "lm")


def test_registry_forgets_old_finished_runs_but_never_active_ones(task):
    registry = RunRegistry(max_concurrent=1, keep_finished=2)
    finished = []
    for i in range(4):
        run = TrainingRun(tiny_model(task), task, quick(steps=2), name=f"f{i}", registry=registry).start()
        run.join(30)
        finished.append(run)
    active = TrainingRun(tiny_model(task), task, quick(steps=10**6), name="active", registry=registry).start()
    assert registry.runs == finished[2:] + [active]  # f0 was forgotten when f3 came, f1 when "active" came
    active.stop()
