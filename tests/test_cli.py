"""The command line: help, train -> eval / decode / list in real subprocesses, clear errors with exit code 2,
and decode never raising anything but a clear ValueError, whatever the text."""
import argparse
import io
import json
import os
import signal
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import torch
from fuzzing import fuzz
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from attnviz import TransformerConfig, build_model
from attnviz import cli as cli_module
from attnviz.__main__ import main
from attnviz.cli import decode, decode_command, training_plan
from attnviz.data.tasks import make_task
from attnviz.data.tokenizers import BOS, EOS, CharTokenizer
from attnviz.models.architectures import MAX_PARAMETERS
from attnviz.training.checkpoint import load_checkpoint, save_checkpoint
from attnviz.training.checkpoint_folder import SHIPPED_DIR, CheckpointError
from attnviz.training.executor import ThreadExecutor
from attnviz.training.presets import PRESETS, build
from attnviz.training.runs import RunRegistry, TrainingRun

REPO = Path(__file__).resolve().parent.parent
SMALL_TASK = ["--task-param", "n_train=64", "--task-param", "n_val=8", "--task-param", "n_test=8"]


def cli(*args, user_dir):
    env = {**os.environ, "ATTNVIZ_USER_DIR": str(user_dir), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "attnviz", *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=600)


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory):
    """A user folder holding 'tiny', a reverse Transformer trained for 3 steps by the CLI."""
    user_dir = tmp_path_factory.mktemp("user")
    done = cli("train", "--task", "reverse", *SMALL_TASK, "--size", "d_model=16", "--size", "d_ff=32",
               "--steps", "3", "--batch-size", "8", "--seed", "1", "--name", "tiny", user_dir=user_dir)
    assert done.returncode == 0, done.stderr
    assert f"saved {user_dir / 'tiny'}" in done.stdout
    return user_dir


@pytest.fixture(scope="module")
def tiny(user_dir):
    return load_checkpoint(user_dir / "tiny")


def test_help_names_every_command():
    done = cli("--help", user_dir=REPO / "user_checkpoints")
    assert done.returncode == 0
    for command in ("train", "eval", "decode", "list", "bench"):
        assert f"    {command} " in done.stdout


@pytest.mark.parametrize("command, phrase", [
    ("train", "reverse-transformer"), ("train", "lstm+bahdanau"), ("train", "--time-budget"),
    ("eval", "exact match"), ("decode", "greedy"), ("list", "ATTNVIZ_USER_DIR")])
def test_each_command_explains_itself(capsys, command, phrase):
    with pytest.raises(SystemExit) as exit:
        main([command, "--help"])
    assert exit.value.code == 0 and phrase in capsys.readouterr().out


def parse(argv):
    parser = argparse.ArgumentParser()
    cli_module.add_parser(parser.add_subparsers())
    return parser.parse_args(argv)


def test_options_override_the_preset_piece_by_piece():
    task, model, config, out, extra = training_plan(parse(
        ["train", "--preset", "reverse-lstm+bahdanau", "--steps", "7", "--size", "hidden_size=32", "--name", "mine"]))
    assert out.name == "mine" and extra == {"preset": "reverse-lstm+bahdanau", "arch": "lstm+bahdanau"}
    assert (model.config.cell, model.config.attention, model.config.hidden_size) == ("lstm", "bahdanau", 32)
    assert (config.steps, config.lr, config.seed) == (7, PRESETS["reverse-lstm+bahdanau"].train["lr"], 0)
    task, model, config, out, extra = training_plan(parse(
        ["train", "--preset", "reverse-transformer", "--task", "copy", *SMALL_TASK, "--out", "/tmp/x/copy-1"]))
    assert task.name == "copy" and extra["arch"] == "transformer" and out == Path("/tmp/x/copy-1")


def test_a_tsv_file_trains_pairs_and_a_bad_one_names_its_line(tmp_path, capsys):
    (tmp_path / "pairs.tsv").write_text("".join(f"{w}\t{w[::-1]}\n" for w in ["abc", "hello", "tea", "cat", "dog"]))
    task, model, config, out, extra = training_plan(parse(["train", "--tsv-file", str(tmp_path / "pairs.tsv")]))
    assert task.name == "pairs" and ("cat", "tac") in task.train + task.val + task.test
    assert out.name == "pairs-transformer" and extra["arch"] == "transformer"
    (tmp_path / "bad.tsv").write_text("a\tb\nc\n")
    assert main(["train", "--tsv-file", str(tmp_path / "bad.tsv")]) == 2
    assert "line 2 of the TSV file has 1 tab-separated column;" in capsys.readouterr().err


def test_train_saves_what_it_trained(tiny):
    assert tiny.meta["task"]["name"] == "reverse" and tiny.meta["arch"] == "transformer"
    assert tiny.meta["train"]["steps"] == 3 and tiny.meta["train"]["seed"] == 1
    assert tiny.meta["history"]["step"] == [1, 2, 3]
    assert tiny.config.d_model == 16 and tiny.config.d_ff == 32


def test_eval_reproduces_the_recorded_metrics(user_dir, tiny):
    done = cli("eval", "tiny", "--json", user_dir=user_dir)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["metrics"] == pytest.approx(tiny.meta["metrics"], rel=1e-5)
    assert set(report["metrics"]) == {"loss", "token_accuracy", "exact_match"}


def reference_greedy(model, src):
    """Greedy decoding by full forward passes (no KV cache): the argmax at the last position, until EOS."""
    out = [BOS]
    with torch.no_grad():
        while len(out) < model.config.max_len:
            token = model(src, torch.tensor([out]))[0, -1].argmax().item()
            if token == EOS:
                break
            out.append(token)
    return out[1:]


def test_decode_prints_the_greedy_output_and_notes_unknown_characters(user_dir, tiny):
    done = cli("decode", "tiny", "héllo", user_dir=user_dir)
    assert done.returncode == 0, done.stderr
    src = torch.tensor([tiny.tokenizer.encode("héllo") + [EOS]])
    assert done.stdout == tiny.tokenizer.decode(reference_greedy(tiny.model, src)) + "\n"
    assert "does not know the characters '\\xe9'" in done.stderr


def test_list_shows_the_checkpoint(user_dir):
    (user_dir / "broken").mkdir()
    done = cli("list", user_dir=user_dir)
    assert done.returncode == 0, done.stderr
    row = next(line.split() for line in done.stdout.splitlines() if line.startswith("tiny "))
    assert row[:4] == ["tiny", "user", "transformer", "reverse"]
    assert "skipped" in done.stderr and "broken" in done.stderr


def test_bad_input_is_a_clear_message_and_exit_code_2(user_dir):
    done = cli("decode", "tiny", "", user_dir=user_dir)
    assert done.returncode == 2
    assert done.stderr == "error: the input is empty: type something to transform\n"


@pytest.mark.parametrize("argv, message", [
    (["decode", "no-such-model", "abc"], "no checkpoint named 'no-such-model'"),
    (["decode", "tiny", "x" * 500], "the most this model takes is 127"),
    (["decode", "tiny", "abc", "--max-new-tokens", "-1"], "max_new_tokens=-1 is not possible"),
    (["eval", "../tiny"], "no checkpoint folder"),
    (["train", "--task", "reverse", *SMALL_TASK, "--size", "d_model=15"], "divisible by n_heads"),
    (["train", "--task", "reverse", *SMALL_TASK, "--arch", "lm"], "does not fit the reverse task"),
    (["train", "--task", "reverse", *SMALL_TASK, "--name", ".."], "cannot name a checkpoint"),
    (["train", "--task", "text", "--text-file", "/no/such/file"], "cannot read /no/such/file"),
    (["train"], "say what to train"),
])
def test_bad_input_in_process(capsys, monkeypatch, user_dir, argv, message):
    monkeypatch.setattr("attnviz.training.checkpoint_folder.USER_DIR", user_dir)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


def test_a_preset_without_a_name_does_not_hide_the_shipped_model(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr("attnviz.training.checkpoint_folder.USER_DIR", tmp_path)
    assert main(["train", "--preset", "reverse-transformer", *SMALL_TASK, "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert err == ("error: 'reverse-transformer' is the name of a shipped model: give yours its own, e.g. "
                   "--name my-reverse-transformer (or --out PATH)\n")
    assert main(["train", "--preset", "reverse-transformer", *SMALL_TASK, "--steps", "1",
                 "--name", "reverse-transformer"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: 'reverse-transformer' is the name of a shipped model") and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []
    assert load_checkpoint("reverse-transformer").path.parent == SHIPPED_DIR  # what eval and the picker find


def test_a_name_someone_else_trained_is_refused(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr("attnviz.training.checkpoint_folder.USER_DIR", tmp_path)
    tokenizer = CharTokenizer("abc")
    model = build_model(TransformerConfig(tokenizer.vocab_size, tokenizer.vocab_size, d_model=8, n_heads=2, d_ff=16))
    save_checkpoint("adas", model, tokenizer, {"owner": "ada-browser", "trained_by": "Ada"})
    before = (tmp_path / "adas" / "meta.json").read_bytes()
    assert main(["train", "--task", "reverse", *SMALL_TASK, "--steps", "1", "--name", "adas"]) == 2
    assert capsys.readouterr().err == "error: the name 'adas' is taken: it holds a model trained by Ada. " \
                                      "Choose another name\n"
    assert (tmp_path / "adas" / "meta.json").read_bytes() == before


def tiny_page_run(name, owner):
    """A page's run (saving, owned by a browser) of a tiny reverse Transformer that trains until stopped."""
    task = make_task("reverse", n_train=64, n_val=8, n_test=8)
    model, config = build(task, "transformer", {"d_model": 16, "n_heads": 2, "d_ff": 32},
                          {"steps": 10**6, "eval_every": 10**6, "snapshot_every": 0, "batch_size": 8})
    return TrainingRun(model, task, config, name=name, owner=owner, save=True, registry=RunRegistry(1),
                       executor=ThreadExecutor())


def test_the_command_line_is_refused_a_name_a_page_run_holds(monkeypatch, tmp_path, wait_for_run):
    monkeypatch.setattr("attnviz.training.checkpoint_folder.USER_DIR", tmp_path)
    run = tiny_page_run("race", "ada-browser").start()
    wait_for_run(run, lambda snap: snap.step >= 1, what="step 1")
    done = cli("train", "--task", "reverse", *SMALL_TASK, "--steps", "1", "--name", "race", user_dir=tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert done.stderr.startswith("error: the name 'race' is taken: a model is being trained or saved under it")
    run.stop("ada-browser", timeout=60)
    assert load_checkpoint(tmp_path / "race").meta["owner"] == "ada-browser"  # the page's save, not replaced


def test_a_page_run_is_refused_a_name_the_command_line_is_training(monkeypatch, tmp_path):
    monkeypatch.setattr("attnviz.training.checkpoint_folder.USER_DIR", tmp_path)
    env = {**os.environ, "ATTNVIZ_USER_DIR": str(tmp_path), "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    trainer = subprocess.Popen([sys.executable, "-m", "attnviz", "train", "--task", "reverse", *SMALL_TASK,
                                "--size", "d_model=16", "--size", "d_ff=32", "--steps", "1000000", "--time-budget",
                                "120", "--name", "race"], env=env, cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # the time budget bounds the test
    try:
        assert trainer.stdout.readline().startswith("training transformer")  # printed while holding the name
        progress = ""
        while "loss=" not in progress and trainer.poll() is None:  # the bar shows a loss: it trains, Ctrl-C saves
            progress += trainer.stderr.read(1)
        with pytest.raises(CheckpointError, match="'race' is taken: a model is being trained or saved under it"):
            tiny_page_run("race", "ada-browser").start()
    finally:
        trainer.send_signal(signal.SIGINT)  # Ctrl-C: the command line stops and saves
        out, err = trainer.communicate(timeout=120)
    assert trainer.returncode == 0, err
    assert load_checkpoint(tmp_path / "race").meta.get("owner") is None  # the command line's model
    with pytest.raises(CheckpointError, match="'race' is taken: it holds a model trained by command line"):
        tiny_page_run("race", "ada-browser").start()


def test_a_bad_option_is_exit_code_2(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["train", "--steps", "many"])
    assert exit.value.code == 2 and "invalid int value" in capsys.readouterr().err


@pytest.fixture(scope="module")
def language_model(tmp_path_factory):
    """An untrained LM with a sentencepiece tokenizer (byte fallback), saved and loaded like any checkpoint."""
    torch.manual_seed(0)
    task = make_task("text", text="the cat sat on the mat.\n" * 40, tokenizer="bpe", vocab_size=300, block_size=16)
    model, _ = build(task, "lm", {"d_model": 16, "n_heads": 2, "d_ff": 32, "max_len": 24})
    path = tmp_path_factory.mktemp("lm") / "lm"
    save_checkpoint(path, model, task.tokenizer, {"task": task.spec()})
    return load_checkpoint(path)


TEXT = st.text(max_size=300) | st.text(alphabet="abcdefgh", max_size=200)


@settings(max_examples=60, deadline=None)
@given(text=TEXT)
@example(text="")
@example(text="a" * 100_000)
@example(text="\ud800 lone surrogate")
@example(text="\x00\n\t")
def test_decode_never_raises_anything_but_a_clear_value_error(tiny, language_model, text):
    for checkpoint in (tiny, language_model):
        try:
            assert isinstance(decode(checkpoint, text), str)
        except ValueError as error:
            assert str(error)


@settings(max_examples=20, deadline=None)
@given(text=TEXT)
@example(text="")
@example(text="\ud800")
def test_decode_command_exits_0_or_2(user_dir, text):
    args = argparse.Namespace(checkpoint=str(user_dir / "tiny"), text=text, max_new_tokens=None)
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = decode_command(args)
    assert code == 0 or (code == 2 and err.getvalue().startswith("error: "))


@pytest.mark.parametrize("argv, message", [
    (["--name", "../../x"], "'../../x' cannot name a checkpoint"),
    (["--name", "a/b"], "'a/b' cannot name a checkpoint"),
    (["--size", "bogus=1"], "bogus is not a setting of the transformer architecture"),
    (["--size", "src_vocab_size=5"], "src_vocab_size comes from the tokenizer"),
    (["--size", "pad_id=99"], "pad_id comes from the tokenizer"),
    (["--size", "max_len=100000000"], "max_len=100000000 is not possible"),
    (["--size", "max_len=1000000"], "positional tables (max_len=1000000"),
    (["--arch", "lstm", "--size", "hidden_size=1000000000"], "hidden_size=1000000000 is not possible"),
    (["--arch", "lstm", "--size", "embed_dim=9223372036854775808"], "embed_dim=9223372036854775808 is not possible"),
    (["--size", "embed_dim=9223372036854775808"], "embed_dim is not a setting of the transformer architecture"),
    (["--size", "n_encoder_layers=1000000000"], "n_encoder_layers=1000000000 is not possible"),
    (["--size", "n_encoder_layers=200"], "encoder layers (n_encoder_layers=200"),
    (["--size", "d_model=NaN"], "d_model=nan is not possible"),
])
def test_bad_names_and_sizes_are_one_error_line_and_nothing_written(capsys, monkeypatch, tmp_path, argv, message):
    users = tmp_path / "a" / "b" / "users"
    users.mkdir(parents=True)
    monkeypatch.setattr("attnviz.training.checkpoint_folder.USER_DIR", users)
    assert main(["train", "--task", "reverse", *SMALL_TASK, "--steps", "1", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err
    assert [p for p in tmp_path.rglob("*") if p != users and p not in users.parents] == []


SIZE_KEYS = ["d_model", "n_heads", "n_encoder_layers", "n_decoder_layers", "d_ff", "max_len", "embed_dim",
             "hidden_size", "n_layers", "dropout", "positional", "pad_id", "src_vocab_size", "bogus"]
PLAUSIBLE = st.sampled_from([1, 2, 4, 8, 16, 32]).map(str)
SIZE_VALUES = (PLAUSIBLE | PLAUSIBLE | st.integers(-2, 300).map(str) | st.integers().map(str) | st.sampled_from(["1e9", "NaN", "-Infinity",
               "true", "null", "[]", "{}", '"64"', "learned", ""]) | st.text(max_size=8))


@fuzz(40)
@given(arch=st.sampled_from(["transformer", "lstm+attention", "gru+attention", "lstm"]),
       sizes=st.lists(st.tuples(st.sampled_from(SIZE_KEYS) | st.text(min_size=1, max_size=5), SIZE_VALUES), max_size=3))
def test_training_plan_with_random_sizes_is_a_model_or_a_value_error(arch, sizes):
    argv = ["train", "--task", "reverse", *SMALL_TASK, "--arch", arch, "--name", "fuzzed"]  # not a shipped name
    for key, value in sizes:
        argv += ["--size", f"{key.replace('=', '')}={value}"]
    try:
        args = parse(argv)
    except SystemExit:  # argparse's own message and exit code 2 for a KEY=VALUE it cannot split
        return
    try:
        task, model, config, out, extra = training_plan(args)
    except ValueError as error:
        assert str(error)
        event("refused")
    else:
        assert sum(p.numel() for p in model.parameters()) <= MAX_PARAMETERS
        event("built")
