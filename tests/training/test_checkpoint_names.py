"""Checkpoint names: which strings are refused, and whose a name and a model are: one writer at a time holds a name
(threads and processes alike), nobody replaces or deletes someone else's model, shipped names stay reserved, and only
a run's owner stops or saves it."""
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from attnviz import TransformerConfig, build_model
from attnviz.data.tasks import make_task
from attnviz.data.tokenizers import CharTokenizer
from attnviz.training.checkpoint import load_checkpoint, save_checkpoint
from attnviz.training.checkpoint_folder import CheckpointError
from attnviz.training.checkpoint_list import list_checkpoints
from attnviz.training.checkpoint_names import claim_name, delete_checkpoint, validate_name
from attnviz.training.config import TrainConfig
from attnviz.training.owners import anonymous_label, trained_by
from attnviz.training.presets import build
from attnviz.training.runs import RunRegistry, TrainingRun

REPO = Path(__file__).resolve().parents[2]
TOKENIZER = CharTokenizer("abc")
CONFIG = TransformerConfig(TOKENIZER.vocab_size, TOKENIZER.vocab_size, d_model=8, n_heads=2, d_ff=16, max_len=16)
BEING_WRITTEN = "being trained or saved under it right now"


def model_filled_with(value):
    model = build_model(CONFIG)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(value)
    return model


def weights_of(path):
    return {p.flatten()[0].item() for p in load_checkpoint(path).model.parameters()}


@pytest.mark.parametrize("name", ["..", ".", "a/b", "", ".hidden", "a b", "a\\b", "x" * 101, "naïve", None])
def test_bad_names_are_refused(name):
    with pytest.raises(CheckpointError, match="cannot name a checkpoint"):
        validate_name(name)


def test_a_held_name_is_refused_to_every_other_thread_until_released(model_dirs):
    barrier, outcomes, lock = threading.Barrier(8), [], threading.Lock()
    held = []

    def writer(i):
        barrier.wait()
        try:
            held.append(claim_name("contested", owner=f"tab{i}"))
            outcome = "held"
        except CheckpointError as error:
            outcome = str(error)
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert outcomes.count("held") == 1, outcomes
    assert all(BEING_WRITTEN in outcome for outcome in outcomes if outcome != "held")
    held[0].release()
    with claim_name("contested", owner="tab9") as claim:
        assert claim.held
    assert not claim.held


CLAIM_IN_CHILD = """
import sys, time
from attnviz.training.checkpoint_folder import CheckpointError
from attnviz.training.checkpoint_names import claim_name
try:
    claim = claim_name(sys.argv[1], owner="child")
except CheckpointError as error:
    print("refused:", error, flush=True)
    sys.exit(0)
print("held", flush=True)
time.sleep(600)
"""


def child(path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", CLAIM_IN_CHILD, str(path)], stdout=subprocess.PIPE, text=True,
                            env=env)


def test_a_name_held_in_another_process_is_refused_and_freed_when_that_process_dies(model_dirs):
    user, _ = model_dirs
    with claim_name(user / "shared", owner="here"):
        refused = child(user / "shared")
        assert refused.stdout.readline().startswith("refused: the name 'shared' is taken: a model is " + BEING_WRITTEN)
        refused.wait(60)
    holder = child(user / "shared")
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(CheckpointError, match=BEING_WRITTEN):
            claim_name(user / "shared", owner="here")
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # a crash: the kernel releases its lock
        holder.wait(60)
    with claim_name(user / "shared", owner="here") as claim:
        assert claim.held


def test_someone_elses_saved_model_is_never_replaced_and_your_own_is(model_dirs):
    user, _ = model_dirs
    save_checkpoint("ada-model", model_filled_with(1), TOKENIZER, {"owner": "ada-token", "trained_by": "Ada"})
    with pytest.raises(CheckpointError, match="'ada-model' is taken: it holds a model trained by Ada"):
        save_checkpoint("ada-model", model_filled_with(2), TOKENIZER, {"owner": "bob-token"})
    with pytest.raises(CheckpointError, match="trained by Ada"):
        claim_name("ada-model", owner="bob-token")
    with pytest.raises(CheckpointError, match="trained by Ada"):
        save_checkpoint("ada-model", model_filled_with(2), TOKENIZER, {})  # the command line neither
    assert weights_of(user / "ada-model") == {1.0}
    save_checkpoint("ada-model", model_filled_with(3), TOKENIZER, {"owner": "ada-token", "trained_by": "Ada"})
    assert weights_of(user / "ada-model") == {3.0}


def test_a_save_while_another_writer_holds_the_name_is_refused(model_dirs):
    user, _ = model_dirs
    with claim_name("busy", owner="tab"):
        with pytest.raises(CheckpointError, match=BEING_WRITTEN):
            save_checkpoint("busy", model_filled_with(1), TOKENIZER, {"owner": "tab"})
    assert not (user / "busy").exists()


def test_shipped_names_are_reserved_in_the_user_folder(model_dirs):
    user, shipped = model_dirs
    save_checkpoint(shipped / "reverse-x", model_filled_with(1), TOKENIZER, {})  # how shipped models are made
    for name in ("reverse-x", user / "reverse-x"):
        with pytest.raises(CheckpointError, match="'reverse-x' is the name of a shipped model.*'my-reverse-x'"):
            save_checkpoint(name, model_filled_with(2), TOKENIZER, {})
    assert not (user / "reverse-x").exists()
    assert load_checkpoint("reverse-x").path == shipped / "reverse-x"
    save_checkpoint(shipped / "reverse-x", model_filled_with(3), TOKENIZER, {})  # remade where it ships
    assert weights_of(shipped / "reverse-x") == {3.0}


def test_refused_names_are_explained_in_the_session_language(model_dirs, in_chinese):
    user, shipped = model_dirs
    save_checkpoint("ada-model", model_filled_with(1), TOKENIZER, {"owner": "ada-token", "trained_by": "Ada"})
    save_checkpoint(shipped / "reverse-x", model_filled_with(1), TOKENIZER, {})
    with in_chinese() as zh:
        with pytest.raises(CheckpointError) as taken:
            save_checkpoint("ada-model", model_filled_with(2), TOKENIZER, {"owner": "bob-token"})
        with pytest.raises(CheckpointError) as reserved:
            claim_name("reverse-x")
        with pytest.raises(CheckpointError) as undeletable:
            delete_checkpoint("reverse-x", "ada-token")
        with pytest.raises(CheckpointError) as bad:
            validate_name("a/b")
        assert str(taken.value) == zh("the name {name} is taken: it holds a model trained by {trainer}. Choose "
                                      "another name", name="'ada-model'", trainer="Ada")
        assert str(reserved.value) == zh("{name} is the name of a shipped model, reserved so that the shipped model "
                                         "stays visible: choose another name (e.g. '{suggestion}')",
                                         name="'reverse-x'", suggestion="my-reverse-x")
        assert str(undeletable.value) == zh("{name} is a shipped model: it cannot be deleted", name="'reverse-x'")
        assert str(bad.value) == zh("{name} cannot name a checkpoint: use 1-100 letters, digits, '.', '_' or '-', "
                                    "not starting with '.' and without path separators (e.g. 'reverse-small')",
                                    name="'a/b'")
    with pytest.raises(CheckpointError, match="^'reverse-x' is a shipped model: it cannot be deleted$"):
        delete_checkpoint("reverse-x", "ada-token")  # English again after the block


def test_only_the_owner_deletes_a_model_and_never_while_it_is_written(model_dirs):
    user, shipped = model_dirs
    save_checkpoint("ada-model", model_filled_with(1), TOKENIZER, {"owner": "ada-token"})
    save_checkpoint("cli-model", model_filled_with(1), TOKENIZER, {})
    save_checkpoint(shipped / "shipped-model", model_filled_with(1), TOKENIZER, {})
    with pytest.raises(CheckpointError, match="trained by student"):
        delete_checkpoint("ada-model", "bob-token")
    with pytest.raises(CheckpointError, match="trained by command line"):
        delete_checkpoint("cli-model", "ada-token")
    with pytest.raises(CheckpointError, match="'shipped-model' is a shipped model: it cannot be deleted"):
        delete_checkpoint("shipped-model", "ada-token")
    with pytest.raises(CheckpointError, match="no model named 'nothing'"):
        delete_checkpoint("nothing", "ada-token")
    with pytest.raises(CheckpointError, match="cannot name a checkpoint"):
        delete_checkpoint("../shipped/shipped-model", "ada-token")
    with claim_name("ada-model", owner="ada-token"):  # a run of Ada's saving over it right now
        with pytest.raises(CheckpointError, match=BEING_WRITTEN):
            delete_checkpoint("ada-model", "ada-token")
    assert (user / "ada-model" / "meta.json").is_file() and (shipped / "shipped-model" / "meta.json").is_file()
    delete_checkpoint("ada-model", "ada-token")
    assert sorted(p.name for p in user.iterdir()) == [".ada-model.lock", ".cli-model.lock", "cli-model"]
    assert [info.name for info in list_checkpoints()] == ["shipped-model", "cli-model"]


def test_who_trained_a_model_never_shows_the_token():
    token = "9f86d081884c7d659a2feaa0c55ad015"
    label = anonymous_label(token)
    assert label.startswith("student ") and len(label) == len("student ") + 6
    assert label[8:] not in token and label != anonymous_label(token[:-1] + "6")
    assert trained_by({"owner": token, "trained_by": "Ada"}) == "Ada"
    assert trained_by({"owner": token}) == label and trained_by({}) == "command line"


# ---------------------------------------------------------------------------------------------- runs

@pytest.fixture(scope="module")
def task():
    return make_task("reverse", min_len=2, max_len=4, alphabet="abc", n_train=64, n_val=8, n_test=8)


def tiny_run(task, name, owner, steps=10**6, registry=None, **kwargs):
    model, _ = build(task, "transformer", {"d_model": 16, "n_heads": 2, "d_ff": 32}, {})
    config = TrainConfig(steps=steps, batch_size=8, eval_every=10**6, snapshot_every=0, device="cpu")
    return TrainingRun(model, task, config, name=name, owner=owner, registry=registry or RunRegistry(2), **kwargs)


def test_only_the_owner_stops_a_run_and_others_may_watch(model_dirs, task, wait_for_run):
    run = tiny_run(task, "ada-run", "ada-token").start()
    wait_for_run(run, lambda snap: snap.step >= 2, what="step 2")
    for someone in ("bob-token", ""):
        with pytest.raises(ValueError, match="only the one who started the run 'ada-run' can stop it"):
            run.stop(someone, timeout=0)
    step = run.snapshot().step
    wait_for_run(run, lambda snap: snap.step > step + 2, what="more steps after Bob's stop")  # it went on
    assert not run.stop_requested.is_set()
    run.stop("ada-token", timeout=60)
    assert run.snapshot().status == "stopped"


def test_two_runs_under_one_name_the_second_is_refused_and_the_first_is_saved(model_dirs, task, wait_for_run):
    user, _ = model_dirs
    first = tiny_run(task, "race", "ada-token", steps=10**6, save=True, trained_by="Ada").start()
    second = tiny_run(task, "race", "bob-token", steps=5, save=True)
    with pytest.raises(CheckpointError, match=BEING_WRITTEN):
        second.start()
    assert second not in second.registry.runs and not second.thread.is_alive()
    wait_for_run(first, lambda snap: snap.step >= 2, what="step 2")
    first.stop("ada-token", timeout=60)
    meta = json.loads((user / "race" / "meta.json").read_text())
    assert (meta["owner"], meta["trained_by"], meta["status"]) == ("ada-token", "Ada", "stopped")
    with pytest.raises(CheckpointError, match="trained by Ada"):  # saved: now it is Ada's model that holds it
        tiny_run(task, "race", "bob-token", steps=5, save=True).start()


def test_a_run_stopped_in_the_queue_frees_its_name(model_dirs, task):
    registry = RunRegistry(1)
    busy = tiny_run(task, "busy", "ada-token", registry=registry).start()
    queued = tiny_run(task, "queued", "bob-token", registry=registry, save=True).start()
    queued.stop("bob-token", timeout=60)
    assert queued.done and queued.snapshot().status == "stopped"
    with claim_name("queued", owner="carol-token") as claim:
        assert claim.held
    busy.stop("ada-token", timeout=60)


def test_only_the_owner_saves_a_diverged_run(model_dirs, task):
    user, _ = model_dirs
    run = tiny_run(task, "wild", "ada-token", steps=3)
    run.start().join(60)
    run.result.status = "diverged"  # what check_divergence marks; saving it is the owner's choice
    with pytest.raises(ValueError, match="only the one who started the run 'wild' can save it"):
        run.save_anyway("bob-token")
    assert not (user / "wild").exists()
    assert run.save_anyway("ada-token") == str(user / "wild")
    assert json.loads((user / "wild" / "meta.json").read_text())["owner"] == "ada-token"
