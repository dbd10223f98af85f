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
from attnviz.training.executor import ThreadExecutor
from attnviz.training.loop import learning_rate, parameter_groups, train, training_losses
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


def test_schedule_equals_its_closed_form():
    """Linear warm-up to lr over `warmup` steps, then lr * (0.1 + 0.9 * (1 + cos(pi * t)) / 2), t from 0 to 1."""
    config = quick(steps=1000, warmup=100, lr=3e-3)
    expected = {0: 3e-3 / 100, 49: 3e-3 * 50 / 100, 99: 3e-3,
                100: 3e-3,  # t = 0
                325: 3e-3 * (0.1 + 0.9 * (1 + math.cos(math.pi / 4)) / 2),  # t = 1/4
                550: 3e-3 * 0.55,  # t = 1/2: halfway between lr and its 10% floor
                775: 3e-3 * (0.1 + 0.9 * (1 - math.cos(math.pi / 4)) / 2),  # t = 3/4
                1000: 3e-4, 5000: 3e-4}  # the floor, and it stays there
    for step, lr in expected.items():
        assert learning_rate(step, config) == pytest.approx(lr, rel=1e-9), step
    assert learning_rate(0, quick(warmup=0, lr=1.0)) == pytest.approx(1.0)  # no warm-up: the peak at once


def smoothed_loss_by_hand(logits, targets, eps, pad=0, bos=1):
    """sum_k -q_k log p_k per real target, averaged; q = (1 - eps) one-hot + eps / (V - 2) on every id but PAD, BOS."""
    rows = []
    for row_logits, target in zip(logits.tolist(), targets.tolist()):
        if target == pad:
            continue
        log_z = math.log(sum(math.exp(x) for x in row_logits))
        allowed = [k for k in range(len(row_logits)) if k not in (pad, bos)]
        q = {k: eps / len(allowed) for k in allowed}
        q[target] += 1 - eps
        rows.append(sum(-q_k * (row_logits[k] - log_z) for k, q_k in q.items()))
    return sum(rows) / len(rows)


def test_label_smoothing_equals_the_formula_and_puts_no_mass_on_pad_or_bos():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 7, generator=g) * 3  # (B, T, V)
    logits[..., 0] += 4  # PAD and BOS get large logits: mass put on them would show
    logits[..., 1] += 4
    targets = torch.tensor([[4, 2, 0], [6, 3, 5]])  # one padded position
    for eps in (0.0, 0.1, 0.4):
        loss, cross_entropy = training_losses(logits, targets, eps, pad_id=0)
        rows, row_targets = logits.flatten(0, 1), targets.flatten()  # (B * T, V), (B * T,)
        assert loss.item() == pytest.approx(smoothed_loss_by_hand(rows, row_targets, eps), rel=1e-6)
        assert cross_entropy.item() == pytest.approx(smoothed_loss_by_hand(rows, row_targets, 0.0), rel=1e-6)
    torch_style = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=0,
                                                    label_smoothing=0.4)  # spreads mass over all 7 ids
    assert abs(torch_style.item() - training_losses(logits, targets, 0.4, pad_id=0)[0].item()) > 0.05


def test_training_curve_is_plain_cross_entropy_with_label_smoothing(task):
    """history["loss"] at step 1 is the plain cross entropy of the first batch under the initial weights."""
    model = tiny_model(task)
    config = quick(steps=3, label_smoothing=0.3)
    first = next(task.batches("train", config.batch_size, seed=config.seed))
    with torch.no_grad():
        logits = model.logits(first.src, first.tgt_in)  # (B, T, V); dropout is 0, so the same in train mode
    plain = torch.nn.functional.cross_entropy(logits.flatten(0, 1), first.tgt_out.flatten(), ignore_index=0).item()
    smoothed = smoothed_loss_by_hand(logits.flatten(0, 1), first.tgt_out.flatten(), 0.3)
    result = train(model, task, config)
    assert result.history["loss"][0] == pytest.approx(plain, rel=1e-5)
    assert abs(plain - smoothed) > 1e-2  # the two differ, so the check above tells them apart


@pytest.mark.parametrize("architecture", ["transformer", "lstm"])
def test_weight_decay_skips_biases_and_layer_norms(task, architecture):
    """nanoGPT's rule, checked by name: biases (also LSTM bias_ih/bias_hh) and LayerNorm parameters never decay;
    weight matrices and embeddings decay by the configured amount."""
    model = tiny_model(task, architecture=architecture)
    decay_of = {id(p): group["weight_decay"] for group in parameter_groups(model, 0.05) for p in group["params"]}
    names = dict(model.named_parameters())
    assert set(decay_of) == {id(p) for p in names.values()}  # every parameter, once
    kinds = set()
    for name, p in names.items():
        leaf = name.rsplit(".", 1)[-1]
        if leaf.startswith("bias") or "norm" in name:
            kinds.add("no decay")
            assert decay_of[id(p)] == 0.0, name
        else:
            assert leaf.startswith("weight") or leaf == "table", name
            kinds.add("decay")
            assert decay_of[id(p)] == 0.05, name
    assert kinds == {"decay", "no decay"}
    if architecture == "transformer":
        assert decay_of[id(model.encoder.layers[0].norm1.weight)] == 0.0
        assert decay_of[id(model.encoder.embed.tokens.weight)] == 0.05


def test_one_step_with_strong_weight_decay_moves_only_the_matrices(task):
    """One step from the same start, weight decay 0 vs 50 (lr 1e-2: AdamW then halves a decayed tensor): biases and
    LayerNorm parameters come out identical, weight matrices and embeddings do not."""
    stepped = {}
    for decay in (0.0, 50.0):
        model = tiny_model(task)
        train(model, task, quick(steps=1, weight_decay=decay, warmup=0, eval_examples=8))
        stepped[decay] = dict(model.named_parameters())
    for name, p in stepped[0.0].items():
        same = torch.equal(p, stepped[50.0][name])
        assert same == (p.dim() < 2), name
        assert same == (name.endswith(".bias") or "norm" in name), name


def test_training_with_dropout_learns_and_dropout_is_on_only_in_train_mode(task):
    torch.manual_seed(0)
    model = build(task, "transformer", {**TINY, "dropout": 0.2})[0]
    probe = task.collate(task.val[:16])
    model.train()
    with torch.no_grad():
        noisy = [model.logits(probe.src, probe.tgt_in) for _ in range(2)]
    assert not torch.allclose(*noisy)  # dropout draws fresh masks in train mode
    before = evaluate(model, task, "val")
    result = train(model, task, quick(steps=300))
    model.eval()
    with torch.no_grad():
        steady = [model.logits(probe.src, probe.tgt_in) for _ in range(2)]
    assert torch.equal(*steady)  # and none in eval mode
    assert result.status == "done"
    after = evaluate(model, task, "val")
    assert after["loss"] < before["loss"] / 3 and after["exact_match"] >= 0.5, after


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


def test_training_run_stops_when_asked(task, wait_for_run):
    run = TrainingRun(tiny_model(task), task, quick(steps=10**6), name="stopper", registry=RunRegistry(1)).start()
    wait_for_run(run, lambda snap: snap.step >= 3, what="step 3")
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


def test_queued_run_sees_its_place_and_can_leave(task, wait_for_run):
    registry = RunRegistry(max_concurrent=1)
    first = TrainingRun(tiny_model(task), task, quick(steps=10**6), name="a", registry=registry).start()
    second = TrainingRun(tiny_model(task), task, quick(steps=10), name="b", registry=registry).start()
    wait_for_run(first, lambda snap: snap.status == "running", what="running")  # "a" holds the one slot now
    assert second.snapshot().status == "queued" and second.snapshot().queue_position == 1
    second.stop()
    assert second.snapshot().status == "stopped"
    first.stop()
    assert registry.active == 0 and not registry.waiting


def test_finished_run_is_saved_and_loads(task, tmp_path, monkeypatch, wait_for_run):
    from attnviz.training import checkpoint, checkpoint_folder
    monkeypatch.setattr(checkpoint_folder, "USER_DIR", tmp_path)
    run = TrainingRun(tiny_model(task), task, quick(steps=30, snapshot_every=10), name="saved-run", save=True,
                      registry=RunRegistry(1)).start()
    wait_for_run(run, timeout=60)
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


def test_registry_forgets_old_finished_runs_but_never_active_ones(task, wait_for_run):
    registry = RunRegistry(max_concurrent=1, keep_finished=2)
    finished = []
    for i in range(4):
        run = TrainingRun(tiny_model(task), task, quick(steps=2), name=f"f{i}", registry=registry).start()
        wait_for_run(run, timeout=60)
        finished.append(run)
    active = TrainingRun(tiny_model(task), task, quick(steps=10**6), name="active", registry=registry).start()
    assert registry.runs == finished[2:] + [active]  # f0 was forgotten when f3 came, f1 when "active" came
    active.stop()


def test_waiting_for_a_run_that_fails_fails_at_once_with_its_error(task, wait_for_run):
    """The tests' wait helper: a run that ends "failed" fails the waiting test quickly, quoting the run's error."""
    model = tiny_model(task)

    def broken(*args):
        raise RuntimeError("the model broke at step 1")
    model.forward = broken
    run = TrainingRun(model, task, quick(steps=10**6), name="broken", registry=RunRegistry(1),
                      executor=ThreadExecutor()).start()  # in this process: the broken forward is this model's own
    started = time.monotonic()
    with pytest.raises(pytest.fail.Exception, match="ended failed .*RuntimeError: the model broke at step 1"):
        wait_for_run(run, lambda snap: snap.step >= 3, timeout=300, what="step 3")
    assert time.monotonic() - started < 60  # long before the 300 s bound
