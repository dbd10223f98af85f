"""Saving and loading checkpoints: exact round trips, clear refusals of bad files and names, and crash safety under
SIGKILL."""
import json
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from fuzzing import fuzz
from hypothesis import given
from hypothesis import strategies as st
from safetensors.torch import save_file

from attnviz import RNNConfig, TransformerConfig, build_model
from attnviz.data.tasks import make_task
from attnviz.data.tokenizers import CharTokenizer, SentencePieceTokenizer
from attnviz.training.checkpoint import load_checkpoint, save_checkpoint
from attnviz.training.checkpoint_folder import USER_DIR, CheckpointError
from attnviz.training.checkpoint_list import list_checkpoints

REPO = Path(__file__).resolve().parents[2]
TOKENIZER = CharTokenizer("abcdef")
V = TOKENIZER.vocab_size
CONFIGS = {
    "encoder-decoder, tied, learned positions": TransformerConfig(
        V, V, d_model=16, n_heads=2, d_ff=32, max_len=16, positional="learned", tie_embeddings=True),
    "language model": TransformerConfig(V, V, d_model=16, n_heads=2, d_ff=32, max_len=16, n_encoder_layers=0),
    "lstm with Bahdanau attention": RNNConfig(V, V, embed_dim=8, hidden_size=16, attention="bahdanau",
                                              bidirectional=True),
    "lstm with Luong attention": RNNConfig(V, V, embed_dim=8, hidden_size=16, attention="luong-concat"),
    "gru without attention": RNNConfig(V, V, cell="gru", embed_dim=8, hidden_size=16, attention="none"),
}
SMALL = CONFIGS["encoder-decoder, tied, learned positions"]


def logits(model):
    torch.manual_seed(1)
    src, tgt = torch.randint(4, V, (2, 5)), torch.randint(4, V, (2, 4))
    with torch.no_grad():
        return model(src, tgt) if model.has_encoder else model(tgt)


def saved(path, config=SMALL, meta=None):
    save_checkpoint(path, build_model(config), TOKENIZER, meta or {"metrics": {"exact_match": 0.5}})
    return path


@pytest.mark.parametrize("kind", CONFIGS)
def test_round_trip_gives_identical_logits(tmp_path, kind):
    model = build_model(CONFIGS[kind]).eval()
    save_checkpoint(tmp_path / "m", model, TOKENIZER, {"history": {"loss": [2.0, float("nan")]}})
    ck = load_checkpoint(tmp_path / "m")
    assert torch.equal(logits(model), logits(ck.model))
    assert not ck.model.training and ck.config == model.config and ck.name == "m"
    assert ck.tokenizer.encode("fab") == TOKENIZER.encode("fab")
    assert ck.meta["history"]["loss"] == [2.0, None]  # NaN is not JSON: stored as null
    assert ck.task() is None


def test_sentencepiece_tokenizer_file_round_trips_and_is_required(tmp_path):
    tokenizer = SentencePieceTokenizer.train(["the cat sat on the mat", "a dog ran"] * 20, vocab_size=300)
    config = TransformerConfig(tokenizer.vocab_size, tokenizer.vocab_size, d_model=16, n_heads=2, d_ff=32,
                               n_encoder_layers=0)
    save_checkpoint(tmp_path / "lm", build_model(config), tokenizer, {})
    ck = load_checkpoint(tmp_path / "lm")
    assert ck.tokenizer.files() == tokenizer.files()
    assert ck.tokenizer.encode("the mat, ünïcode") == tokenizer.encode("the mat, ünïcode")
    (tmp_path / "lm" / "tokenizer.model").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="cannot rebuild the tokenizer.*not a valid sentencepiece"):
        load_checkpoint(tmp_path / "lm")
    (tmp_path / "lm" / "tokenizer.model").unlink()
    with pytest.raises(CheckpointError, match="tokenizer file .*tokenizer.model is missing"):
        load_checkpoint(tmp_path / "lm")


def test_task_is_rebuilt_from_meta_with_the_checkpoint_tokenizer(tmp_path):
    task = make_task("reverse", seed=3, n_train=20, n_val=5, n_test=5)
    config = TransformerConfig(task.tokenizer.vocab_size, task.tokenizer.vocab_size, d_model=16, n_heads=2, d_ff=32)
    save_checkpoint(tmp_path / "m", build_model(config), task.tokenizer, {"task": task.spec()})
    ck = load_checkpoint(tmp_path / "m")
    assert ck.task().test == task.test and ck.task().train == task.train
    assert ck.task() is ck.task() and ck.task().tokenizer is ck.tokenizer
    edit_meta(tmp_path / "m", task={"name": "juggling", "seed": 0, "params": {}})
    with pytest.raises(CheckpointError, match="cannot rebuild the task.*unknown task 'juggling'"):
        load_checkpoint(tmp_path / "m").task()


def test_tied_weights_are_stored_once_and_stay_tied(tmp_path):
    ck = load_checkpoint(saved(tmp_path / "m"))
    assert ck.model.lm_head.weight is ck.model.decoder.embed.tokens.weight


def test_meta_is_strict_json_with_structural_keys(tmp_path):
    meta = {"metrics": {"loss": torch.tensor(0.25), "acc": float("inf")}, "train": {"steps": 3}}
    saved(tmp_path / "m", meta=meta)
    text = (tmp_path / "m" / "meta.json").read_text()
    stored = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in meta.json"))
    assert stored["metrics"] == {"loss": 0.25, "acc": None}
    assert stored["format_version"] == 1 and stored["architecture"] == "transformer"
    assert TransformerConfig(**stored["config"]) == SMALL
    assert stored["tokenizer"] == TOKENIZER.spec()


def test_bare_name_saves_in_user_dir_and_loads_by_name():
    path = save_checkpoint("test-bare-name", build_model(SMALL), TOKENIZER, {})
    assert path == USER_DIR / "test-bare-name" and str(USER_DIR) == os.environ["ATTNVIZ_USER_DIR"]
    assert load_checkpoint("test-bare-name").path == path


@pytest.mark.parametrize("name", ["..", ""])
def test_saving_under_a_bad_name_is_refused(tmp_path, name):
    with pytest.raises(CheckpointError, match="cannot name a checkpoint"):
        save_checkpoint(str(tmp_path / name) if name else name, build_model(SMALL), TOKENIZER, {})


def test_a_folder_that_is_not_a_checkpoint_is_never_replaced(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"meow")
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        saved(tmp_path / "photos")
    assert (tmp_path / "photos" / "cat.jpg").read_bytes() == b"meow"


def test_an_unwritable_place_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(CheckpointError, match="cannot save the checkpoint .*file/m"):
        saved(tmp_path / "file" / "m")


@pytest.mark.parametrize("payload", [pickle.dumps({"w": [1.0, 2.0]}), "torch.save"])
def test_pickle_renamed_to_safetensors_is_refused(tmp_path, payload):
    path = saved(tmp_path / "m")
    if payload == "torch.save":
        torch.save(build_model(SMALL).state_dict(), path / "model.safetensors")
    else:
        (path / "model.safetensors").write_bytes(payload)
    with pytest.raises(CheckpointError, match="pickle.*never unpickles"):
        load_checkpoint(path)


@pytest.mark.parametrize("keep", [0.5, 0.999, 10 / 10**9])
def test_truncated_weights_are_refused(tmp_path, keep):
    path = saved(tmp_path / "m")
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(path)


def edit_meta(path, **changes):
    meta = json.loads((path / "meta.json").read_text())
    meta.update(changes)
    (path / "meta.json").write_text(json.dumps(meta))


def test_newer_format_is_refused(tmp_path):
    edit_meta(saved(tmp_path / "m"), format_version=2)
    with pytest.raises(CheckpointError, match="format 2 by a newer attnviz.*upgrade"):
        load_checkpoint(tmp_path / "m")


def test_refusals_to_load_read_in_the_session_language(tmp_path, in_chinese):
    newer, corrupt, without_vocabulary = (saved(tmp_path / name) for name in ("newer", "corrupt", "vocabulary"))
    edit_meta(newer, format_version=2)
    (corrupt / "model.safetensors").write_bytes((corrupt / "model.safetensors").read_bytes()[:100])
    edit_meta(without_vocabulary, tokenizer_files=["vocab.txt"])
    with in_chinese() as zh:
        with pytest.raises(CheckpointError) as newer_error:
            load_checkpoint(newer)
        with pytest.raises(CheckpointError) as corrupt_error:
            load_checkpoint(corrupt)
        with pytest.raises(CheckpointError) as missing_error:
            load_checkpoint(without_vocabulary)
        assert str(newer_error.value) == zh(
            "{folder} was written in checkpoint format {version} by a newer attnviz; this version reads format "
            "{readable} at most: please upgrade attnviz", folder=newer, version=2, readable=1)
        reason = str(corrupt_error.value).rpartition("：")[2]  # safetensors' own words stay as they are
        assert reason and str(corrupt_error.value) == zh("{file} is truncated or corrupt: {reason}",
                                                         file=corrupt / "model.safetensors", reason=reason)
        assert str(missing_error.value) == zh("{what} {file} is missing", what=zh("the tokenizer file"),
                                              file=without_vocabulary / "vocab.txt")
    with pytest.raises(CheckpointError, match="was written in checkpoint format 2 by a newer attnviz"):
        load_checkpoint(newer)  # English again after the block


@pytest.mark.parametrize("change, message", [
    ({"architecture": "mamba"}, "unknown architecture 'mamba'"),
    ({"config": {**vars(SMALL), "d_model": 15}}, "config .* is invalid.*divisible"),
    ({"config": {**vars(SMALL), "colour": "red"}}, "config .* is invalid.*unknown.*colour"),
    ({"config": {**vars(SMALL), "d_model": 8192, "d_ff": 65536, "n_decoder_layers": 64}}, "refusing to build"),
    ({"format_version": "1"}, "no valid format_version"),
    ({"tokenizer_files": ["tokenizer.model"]}, "tokenizer file .*tokenizer.model is missing"),
])
def test_bad_meta_is_a_clear_error(tmp_path, change, message):
    edit_meta(saved(tmp_path / "m"), **change)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(tmp_path / "m")


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b"\xff\xfe", b"[" * 100_000])
def test_invalid_meta_json_is_a_clear_error(tmp_path, content):
    (saved(tmp_path / "m") / "meta.json").write_bytes(content)
    with pytest.raises(CheckpointError, match="meta.json"):
        load_checkpoint(tmp_path / "m")


@pytest.mark.parametrize("missing", ["meta.json", "model.safetensors", None])
def test_missing_files_are_clear_errors(tmp_path, missing):
    path = saved(tmp_path / "m")
    if missing:
        (path / missing).unlink()
    with pytest.raises(CheckpointError, match=f"{missing or 'no checkpoint folder'}"):
        load_checkpoint(path if missing else tmp_path / "other")


def rewrite_weights(path, change):
    from safetensors.torch import load_file

    tensors = load_file(path / "model.safetensors")
    change(tensors)
    save_file(tensors, path / "model.safetensors")


def test_shape_mismatch_names_the_tensor_and_both_shapes(tmp_path):
    path = saved(tmp_path / "m")
    rewrite_weights(path, lambda t: t.update({"decoder.layers.0.ff.linear1.weight": torch.zeros(31, 16)}))
    with pytest.raises(CheckpointError, match=r"'decoder.layers.0.ff.linear1.weight' has shape \(31, 16\), "
                                              r"but the model expects \(32, 16\)"):
        load_checkpoint(path)


def test_missing_and_unexpected_tensors_are_named(tmp_path):
    path = saved(tmp_path / "m")
    rewrite_weights(path, lambda t: t.update({"extra.bias": t.pop("lm_head.weight", None)
                                              or t.pop("decoder.embed.tokens.weight")}))
    with pytest.raises(CheckpointError, match=r"missing tensors \['decoder.embed.tokens.weight'\], "
                                              r"unexpected tensors \['extra.bias'\]"):
        load_checkpoint(path)


def test_a_replace_cut_between_the_renames_is_recovered(tmp_path):
    """Only the trash copy exists (killed after renaming the old one away): it loads, lists, and is restored."""
    saved(tmp_path / "m")
    os.rename(tmp_path / "m", tmp_path / ".m.old")
    assert load_checkpoint(tmp_path / "m").name == "m"
    assert [i.name for i in list_checkpoints([tmp_path])] == ["m"]
    saved(tmp_path / "m", meta={"metrics": {"exact_match": 1.0}})
    assert sorted(p.name for p in tmp_path.iterdir()) == [".m.lock", "m"]
    assert load_checkpoint(tmp_path / "m").meta["metrics"] == {"exact_match": 1.0}


SAVE_FOREVER = """
import sys, torch
from attnviz.training.checkpoint import load_checkpoint, save_checkpoint
ck = load_checkpoint(sys.argv[1])
first = ck.meta["iteration"] + 1
for i in range(first, 10**9):
    with torch.no_grad():
        for p in ck.model.parameters():
            p.fill_(i)
    save_checkpoint(sys.argv[1], ck.model, ck.tokenizer, {**ck.meta, "iteration": i})
    if i == first:
        print("saving", flush=True)
"""


def test_sigkill_while_saving_over_a_name_leaves_a_loadable_checkpoint(tmp_path):
    """Each stored version has every weight equal to meta["iteration"], so a mix of versions would show."""
    path = saved(tmp_path / "m", meta={"iteration": 0})
    with torch.no_grad():
        ck = load_checkpoint(path)
        for p in ck.model.parameters():
            p.fill_(0)
    save_checkpoint(path, ck.model, ck.tokenizer, {"iteration": 0})
    rng = random.Random(0)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    iterations = []
    for _ in range(5):
        child = subprocess.Popen([sys.executable, "-c", SAVE_FOREVER, str(path)], stdout=subprocess.PIPE, env=env)
        assert child.stdout.readline() == b"saving\n"
        time.sleep(rng.uniform(0, 0.05))
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        ck = load_checkpoint(path)
        i = ck.meta["iteration"]
        assert all(torch.all(p == i) for p in ck.model.parameters()), f"weights do not match iteration {i}"
        iterations.append(i)
    assert all(a < b for a, b in zip([0] + iterations, iterations))  # each child saved at least once


# ---------------------------------------------------------------------------------------------- links and sizes

def link_into(path, name, outside):
    """Replace `path / name` by a symbolic link to `outside` (a copy of the real file, so only the link differs)."""
    (path / name).rename(outside)
    (path / name).symlink_to(outside)


@pytest.mark.parametrize("name", ["model.safetensors", "meta.json", "tokenizer.model"])
def test_a_linked_file_inside_a_checkpoint_is_refused(tmp_path, name):
    task = make_task("text", text="the cat sat on the mat. " * 20, tokenizer="bpe", vocab_size=300, block_size=8)
    model = build_model(TransformerConfig(task.tokenizer.vocab_size, task.tokenizer.vocab_size, d_model=8, n_heads=2,
                                          d_ff=16, n_encoder_layers=0))
    path = save_checkpoint(tmp_path / "listed" / "m", model, task.tokenizer, {"task": task.spec()})
    (tmp_path / "elsewhere").mkdir()
    link_into(path, name, tmp_path / "elsewhere" / name)
    with pytest.raises(CheckpointError, match=f"{name} is a symbolic link"):
        load_checkpoint(path)
    if name == "meta.json":
        found = list_checkpoints([tmp_path / "listed"])
        assert list(found) == [] and [p.name for p, _ in found.problems] == ["m"]


def test_a_linked_checkpoint_folder_is_refused_and_listed_as_a_problem(tmp_path):
    real, users = saved(tmp_path / "real"), tmp_path / "users"
    users.mkdir()
    (users / "linked").symlink_to(real, target_is_directory=True)
    (users / ".other.old").symlink_to(real, target_is_directory=True)  # a crash-left trash name, linked
    for name in ("linked", "other"):
        with pytest.raises(CheckpointError, match="is a symbolic link"):
            load_checkpoint(users / name)
    found = list_checkpoints([users])
    assert list(found) == []
    assert sorted(p.name for p, message in found.problems if "symbolic link" in message) == ["linked", "other"]


def test_loading_by_name_refuses_a_link_in_the_user_folder(tmp_path, monkeypatch):
    from attnviz.training import checkpoint_folder

    monkeypatch.setattr(checkpoint_folder, "USER_DIR", tmp_path / "users")
    (tmp_path / "users").mkdir()
    (tmp_path / "users" / "sneaky").symlink_to(saved(tmp_path / "real"), target_is_directory=True)
    with pytest.raises(CheckpointError, match="sneaky is a symbolic link"):
        load_checkpoint("sneaky")


@pytest.mark.parametrize("change, message", [
    ({"max_len": 100_000_000}, "max_len=100000000 is not possible"),  # 25.6 GB of positions, refused unbuilt
    ({"max_len": 900_000}, r"refusing to build .*positional tables \(max_len=900000"),
    ({"n_encoder_layers": 20_000}, "n_encoder_layers=20000 is not possible"),
    ({"n_encoder_layers": 256, "d_model": 64, "d_ff": 512}, r"refusing to build .*n_encoder_layers=256"),
    ({"src_vocab_size": 5, "tgt_vocab_size": 5}, "src_vocab_size=5, but its tokenizer's is 10"),
    ({"tgt_vocab_size": 12, "tie_embeddings": False}, "tgt_vocab_size=12, but its tokenizer's is 10"),
    ({"pad_id": 3}, "pad_id=3, but its tokenizer's is 0"),
])
def test_a_crafted_config_is_refused_before_anything_is_built(tmp_path, change, message):
    edit_meta(saved(tmp_path / "m"), config={**vars(SMALL), **change})
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(tmp_path / "m")


META_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                     max_size=3), max_leaves=5)


def mutate(meta, data):
    """meta.json with one key of it, or of its config or tokenizer, set to a random JSON value (or removed)."""
    where = data.draw(st.sampled_from([meta, meta["config"], meta["tokenizer"]]))
    key = data.draw(st.sampled_from(sorted(where)) | st.text(max_size=6))
    if data.draw(st.booleans()):
        where.pop(key, None)
    else:
        where[key] = data.draw(META_VALUES | st.integers(-3, 10**9))
    return meta


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    path = tmp_path_factory.mktemp("pristine") / "m"
    saved(path)
    return path


@fuzz(80)
@given(data=st.data())
def test_random_and_mutated_meta_json_load_or_fail_with_a_checkpoint_error(pristine, tmp_path_factory, data):
    import shutil

    path = tmp_path_factory.mktemp("fuzz") / "m"
    shutil.copytree(pristine, path)
    meta = json.loads((path / "meta.json").read_text())
    if data.draw(st.booleans()):
        (path / "meta.json").write_text(json.dumps(mutate(meta, data)))
    else:
        (path / "meta.json").write_bytes(data.draw(st.binary(max_size=64) | META_VALUES.map(json.dumps).map(str.encode)))
    try:
        loaded = load_checkpoint(path)
    except CheckpointError as error:
        assert str(error)
    else:
        assert isinstance(loaded.model, torch.nn.Module)
    shutil.rmtree(path)
