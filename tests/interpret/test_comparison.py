"""Comparing models: accuracy by length against decoding each example, cost counts against formulas, helpers."""
import html
import re

import pytest
import torch
import torch.nn as nn
from markdown_it import MarkdownIt

from attnviz import build_model
from attnviz.app.tables import MARK_STYLES, marked_html
from attnviz.app.text import trend
from attnviz.data.tasks import make_task
from attnviz.decoding.search import greedy
from attnviz.interpret import contenders
from attnviz.interpret.comparison import (accuracy_by_length, activation_bytes, alignment, error_marks,
                                          examples_of_length, forward_cost, lengths_up_to, reference, translate)
from attnviz.interpret.contenders import (LABELS, TASKS, Contender, checkpoint_name, curve, find_contenders, runs_of,
                                          summary, time_to_target)
from attnviz.models.architectures import model_config
from attnviz.training import checkpoint
from attnviz.training.config import TrainConfig
from attnviz.training.loop import train
from attnviz.training.presets import PRESETS
from attnviz.training.runs import RunRegistry

SMALL = {"min_len": 2, "max_len": 4, "alphabet": "abc", "n_train": 60, "n_val": 10, "n_test": 10}


@pytest.fixture(scope="module")
def trained():
    """A tiny LSTM with attention trained briefly on reverse (lengths 2-4): right on some examples, not all."""
    torch.manual_seed(0)
    task = make_task("reverse", seed=0, **SMALL)
    model = build_model(model_config("lstm+bahdanau", task.tokenizer, embed_dim=8, hidden_size=16, max_len=12))
    train(model, task, TrainConfig(steps=120, batch_size=16, lr=1e-2, warmup=10, eval_every=1000, snapshot_every=0,
                                   device="cpu"))
    return model.eval(), task


def greedy_counts(model, task, examples):
    """(exact sequences, right tokens, tokens) by decoding each example alone and comparing with its target."""
    exact = right = tokens = 0
    for src, tgt in examples:
        ids = task.tokenizer.encode(src) + [task.tokenizer.eos_id]
        out = greedy(model, task.tokenizer, ids, max_new_tokens=len(tgt) + 1, trace=False).ids()
        exact += out == task.tokenizer.encode(tgt) + [task.tokenizer.eos_id]
        tgt_in = torch.tensor([[task.tokenizer.bos_id] + task.tokenizer.encode(tgt)])  # (1, T)
        predicted = model(torch.tensor([ids]), tgt_in)[0].argmax(-1).tolist()  # teacher forced, one example
        target = task.tokenizer.encode(tgt) + [task.tokenizer.eos_id]
        right += sum(p == t for p, t in zip(predicted, target))
        tokens += len(target)
    return exact, right, tokens


@torch.no_grad()
def test_accuracy_by_length_matches_decoding_each_example(trained):
    model, task = trained
    rows = accuracy_by_length(model, task, lengths=[2, 3, 4, 5], n=30, seed=1)
    assert [r["length"] for r in rows] == [2, 3, 4, 5]
    assert [r["trained"] for r in rows] == [True, True, True, False]
    seen = {src for src, _ in task.train}
    for row in rows:
        examples = examples_of_length(task, row["length"], n=30, seed=1)
        assert not seen & {src for src, _ in examples}  # held out from the training data, not only re-seeded
        if not examples:  # "abc" has 9 strings of length 2, and training holds them all
            assert row["examples"] == 0 and row["exact_match"] is None and "training example" in row["note"]
            continue
        exact, right, tokens = greedy_counts(model, task, examples)
        assert row["examples"] == len(examples)
        assert row["exact_match"] == pytest.approx(exact / len(examples))
        assert row["token_accuracy"] == pytest.approx(right / tokens)
    assert 0 < rows[2]["exact_match"] < 1  # the brief training makes the check non-trivial


def test_examples_of_length_use_the_task_alphabet_and_tokenizer(trained):
    _, task = trained
    other = make_task("reverse", seed=0, **SMALL)
    for src, tgt in examples_of_length(task, 7, n=20):
        assert len(src) == 7 and set(src) <= set("abc") and tgt == src[::-1]
    assert examples_of_length(task, 7, n=20) == examples_of_length(other, 7, n=20)
    assert len(examples_of_length(task, 1, n=200)) == 1  # only 3 strings of length 1 exist


def test_lengths_beyond_max_len_are_reported_not_run(trained):
    model, task = trained  # max_len=12: source 11 letters + EOS fits, 12 letters + EOS do not
    rows = accuracy_by_length(model, task, lengths=[11, 12], n=5)
    assert rows[0]["exact_match"] is not None and rows[0]["note"] == ""
    assert rows[1]["exact_match"] is None and "beyond max_len" in rows[1]["note"]


def test_dates_are_grouped_by_source_length():
    task = make_task("dates", seed=0, n_train=50, n_val=10, n_test=40)
    model = build_model(model_config("lstm", task.tokenizer, embed_dim=8, hidden_size=16))
    rows = accuracy_by_length(model, task)
    lengths = [len(task.tokenizer.encode(src)) for src, _ in task.test]
    assert [r["length"] for r in rows] == sorted(set(lengths))
    assert [r["examples"] for r in rows] == [lengths.count(r["length"]) for r in rows]
    assert all(r["trained"] for r in rows)


def tiny_config(architecture):
    task = make_task("reverse", seed=0, **SMALL)
    sizes = {"d_model": 8, "n_heads": 2, "d_ff": 16} if architecture == "transformer" else \
        {"embed_dim": 8, "hidden_size": 8}
    return model_config(architecture, task.tokenizer, **sizes)


def test_cost_counts_attention_weights_like_the_formula():
    lengths = [4, 8, 16, 64]
    per_architecture = {a: forward_cost(tiny_config(a), lengths, batch_size=2, min_run_time=0.01)
                        for a in ("transformer", "lstm+bahdanau", "lstm")}
    for length, t, a, plain in zip(lengths, *per_architecture.values()):
        assert t["length"] == a["length"] == plain["length"] == length
        assert t["attention_weights"] == 3 * 2 * 2 * length * length  # 3 attention modules x B x heads x T x T
        assert a["attention_weights"] == 2 * length * length  # one alignment of B x T x T
        assert plain["attention_weights"] == 0
    for rows in per_architecture.values():
        assert all(b["activation_bytes"] > a["activation_bytes"] > 0 for a, b in zip(rows, rows[1:]))
        assert all(r["forward_ms"] > 0 for r in rows)


class TanhOfEmbedding(nn.Module):
    """A model whose saved tensors are known: embedding saves its indices, tanh its output."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10, 6)

    def forward(self, src, tgt_in):
        return torch.tanh(self.embed(src) * 2.0)  # (B, T, 6); multiplying by a constant saves nothing


def test_activation_bytes_counts_saved_tensors_once_without_parameters():
    src = torch.randint(0, 10, (3, 5))
    assert activation_bytes(TanhOfEmbedding(), src, src) == 3 * 5 * 8 + 3 * 5 * 6 * 4  # int64 ids, float out


def test_reference_and_error_marks():
    task = make_task("dates", seed=0, n_train=50, n_val=10, n_test=10)
    src, tgt = task.test[0]
    assert reference(task, src) == tgt
    assert reference(task, "not a date") is None
    assert reference(make_task("reverse", seed=0, **SMALL), "abc") == "cba"
    assert error_marks("abxde", "abcd") == [("a", "ok"), ("b", "ok"), ("x", "wrong"), ("d", "ok"), ("e", "extra")]
    assert error_marks("ab", "abc") == [("a", "ok"), ("b", "ok"), ("c", "missing")]


def test_translate_rejects_unknown_characters(trained):
    model, task = trained
    assert set(translate(model, task.tokenizer, "abc")) <= set("abc")
    with pytest.raises(ValueError, match="xyz"):
        translate(model, task.tokenizer, "abxyz")


@pytest.mark.parametrize("architecture", ["transformer", "lstm+bahdanau", "lstm"])
def test_alignment_equals_the_attention_of_step_by_step_decoding(architecture):
    torch.manual_seed(0)
    task = make_task("reverse", seed=0, **SMALL)
    model = build_model(tiny_config(architecture)).eval()
    ids = task.tokenizer.encode("abca") + [task.tokenizer.eos_id]
    decoded = greedy(model, task.tokenizer, ids, max_new_tokens=6, trace=True)
    output = task.tokenizer.decode(decoded.ids())
    patterns, src_labels, tgt_labels = alignment(model, task.tokenizer, "abca", output)
    assert src_labels == ["a", "b", "c", "a", "<eos>"]
    assert tgt_labels == [c if c in "abc" else "<unk>" for c in output] + ["<eos>"]  # an untrained model may say <unk>
    expected = {"transformer": ["decoder.layers.0.cross_attn.hook_pattern"],
                "lstm+bahdanau": ["decoder.attention.hook_pattern"], "lstm": []}[architecture]
    assert list(patterns) == expected
    for name, pattern in patterns.items():
        steps = decoded.attention(name)[:, :len(tgt_labels)]  # (H, N, S), one row per decoding step
        assert pattern.shape == (steps.shape[0], len(tgt_labels), len(src_labels))
        n = steps.shape[1]  # one row fewer than the grid when decoding stopped at max_new_tokens, before EOS
        assert n >= len(output) and torch.allclose(torch.from_numpy(pattern[:, :n]), steps, atol=1e-5)


def test_curves_and_summary_of_contenders():
    model = build_model(tiny_config("lstm"))
    history = {"step": [1, 2, 3], "loss": [3.0, 2.0, 1.5], "time": [0.1, 0.3, 0.5]}
    evals = {"step": [3], "time": [0.5], "exact_match": [0.25]}
    c = Contender("LSTM", model, None, history, evals)
    assert curve([c], "loss", "time") == {"LSTM": ([0.1, 0.3, 0.5], [3.0, 2.0, 1.5])}
    assert curve([c], "exact_match") == {"LSTM": ([3], [0.25])}
    assert curve([c], "token_accuracy") == {}
    row, = summary([c])
    assert row["parameters"] == sum(p.numel() for p in model.parameters())
    assert row["ms per step"] == pytest.approx(200.0)
    assert (row["steps"], row["val exact match"]) == (3, 0.25)


def test_lengths_up_to_cover_both_trained_ends_and_a_little_beyond():
    task = make_task("reverse", seed=0, **{**SMALL, "min_len": 4, "max_len": 24, "alphabet": "abcdefgh"})
    assert lengths_up_to(task) == list(range(2, 33, 2))  # 8 past the longest trained length
    assert lengths_up_to(make_task("reverse", seed=0, **SMALL), 7) == [2, 3, 4, 5, 6, 7]


def test_trend_reads_each_model_at_both_lengths():
    rows = {"LSTM": [{"length": 4, "exact_match": 1.0}, {"length": 24, "exact_match": 0.125}],
            "Transformer": [{"length": 4, "exact_match": 1.0}, {"length": 24, "exact_match": None}]}
    assert trend(rows, 4, 24) == "Exact match from length 4 to length 24: LSTM 100% → 12%."


def test_marked_html_escapes_and_colours_each_character():
    wrong = MARK_STYLES["wrong"]
    assert marked_html("<b", "<a") == f'<code><span style="">&lt;</span><span style="{wrong}">b</span></code>'
    assert marked_html("ab") == '<code><span style="">a</span><span style="">b</span></code>'


def test_marked_html_stays_literal_text_when_rendered_as_markdown():
    output = "*a* _b_ $c$ `d` [e](f) <g> & h"  # a user's task may have any character in its outputs
    rendered = MarkdownIt("commonmark").render(marked_html(output))
    assert not re.search(r"<(em|strong|a|g)\b", rendered)
    assert html.unescape(re.sub(r"<[^>]+>", "", rendered)).strip() == output


def test_an_owners_models_are_named_by_a_short_id_never_by_the_token():
    token = "9f86d081884c7d659a2feaa0c55ad015"
    name = checkpoint_name("reverse", "lstm+bahdanau", token)
    assert re.fullmatch(r"reverse-lstm-bahdanau-[0-9a-f]{6}", name) and name[-6:] not in token
    assert name != checkpoint_name("reverse", "lstm+bahdanau", token[:-1] + "6")
    assert checkpoint_name("reverse", "lstm+bahdanau") == "reverse-lstm-bahdanau"  # the shipped one


class FakeRun:
    def __init__(self, steps, done=True):
        self.done, self.history = done, {"step": list(range(1, steps + 1)), "loss": [1.0] * steps,
                                         "time": [0.1] * steps}

    def snapshot(self):
        return self  # history and evals, as a RunSnapshot has them

    evals, model, task, name, started_at, owner = {}, torch.nn.Linear(1, 1), None, "fake", 0.0, "me"


def test_contenders_come_from_shipped_checkpoints_or_from_yours(model_dirs):
    user, shipped = model_dirs
    task = make_task("reverse", seed=0, **SMALL)
    history = {"step": [1, 2], "loss": [2.0, 1.0], "time": [0.1, 0.2]}
    for folder, architecture, owner in [(shipped, "transformer", ""), (shipped, "lstm", ""), (user, "lstm", "me"),
                                        (user, "transformer", "someone else")]:  # a name of mine, not my model
        name = checkpoint_name("reverse", architecture, "me" if folder == user else "")
        model = build_model(tiny_config(architecture))
        checkpoint.save_checkpoint(folder / name, model, task.tokenizer,
                                   {"task": task.spec(), "history": history, "owner": owner})
    registry = RunRegistry()
    found = find_contenders("reverse", registry=registry)
    plain = LABELS["lstm"]
    assert list(found) == ["Transformer", plain] and found[plain].history == history
    assert list(find_contenders("reverse", "me", registry=registry)) == [plain]
    runs = {"transformer": FakeRun(3), "lstm+bahdanau": FakeRun(5, done=False), "lstm": FakeRun(0)}
    for architecture, run in runs.items():
        run.name = checkpoint_name("reverse", architecture, "me")
        registry.runs.append(run)
    # an ended run counts, one still going does not, and one stopped before its first step hides the older checkpoint
    found = find_contenders("reverse", "me", registry=registry)
    assert list(found) == ["Transformer"] and found["Transformer"].history["step"] == [1, 2, 3]
    assert runs_of("reverse", "me", registry) == runs


def test_time_to_target_reports_when_the_target_was_reached(monkeypatch):
    def build_preset(steps, seed):
        torch.manual_seed(seed)
        task = make_task("reverse", seed=seed, **SMALL)
        model = build_model(model_config("lstm+bahdanau", task.tokenizer, embed_dim=8, hidden_size=16, max_len=12))
        return task, model, TrainConfig(steps=int(steps), batch_size=16, lr=1e-2, warmup=10, eval_every=20,
                                        device="cpu", seed=seed)

    monkeypatch.setattr(contenders, "build_preset", build_preset)
    ticks = iter(range(10**6))
    row = time_to_target("400", target=0.5, clock=lambda: next(ticks) / 1000)  # 1 ms per clock reading
    assert row["reached"] and row["steps_to_target"] % 20 == 0 and row["steps_run"] == row["steps_to_target"] < 400
    assert (row["preset"], row["target"], row["steps"]) == ("400", 0.5, 400) and row["val_exact_match"] >= 0.5
    assert 0 < row["seconds_to_target"] == row["seconds_run"]  # it stops at the evaluation that reached the target
    missed = time_to_target("20", target=1.0)
    assert not missed["reached"] and missed["seconds_to_target"] is None and missed["steps_to_target"] is None
    assert (missed["steps_run"], missed["steps"]) == (20, 20) and missed["val_exact_match"] < 1.0


def test_time_to_target_times_a_step_that_takes_a_known_time(monkeypatch):
    """A clock that moves 7 ms per training forward pass and not at all in evaluation: 7 ms a step, whatever the
    number of evaluations."""
    forwards = [0]

    def build_counting(steps, seed):
        torch.manual_seed(seed)
        task = make_task("reverse", seed=seed, **SMALL)
        model = build_model(model_config("lstm+bahdanau", task.tokenizer, embed_dim=8, hidden_size=16, max_len=12))
        model.register_forward_hook(lambda module, args, output: forwards.__setitem__(0, forwards[0] + module.training))
        return task, model, TrainConfig(steps=int(steps), batch_size=16, lr=1e-2, warmup=10, eval_every=10,
                                        device="cpu", seed=seed)

    monkeypatch.setattr(contenders, "build_preset", build_counting)
    row = time_to_target("60", target=1.0, clock=lambda: 0.007 * forwards[0])
    assert row["steps_run"] == forwards[0] == 60
    assert row["ms_per_step"] == pytest.approx(7.0) and row["seconds_run"] == pytest.approx(0.42)


def test_every_task_of_the_page_has_the_three_presets():
    assert all(f"{task}-{architecture}" in PRESETS for task in TASKS for architecture in LABELS)
