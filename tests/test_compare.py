"""Comparing models: accuracy by length against decoding each example, cost counts against formulas, helpers."""
import pytest
import torch
import torch.nn as nn

from attnviz import build_model, compare
from attnviz.decoding import greedy
from attnviz.presets import model_config
from attnviz.tasks import make_task
from attnviz.train import TrainConfig, train

SMALL = {"min_len": 2, "max_len": 4, "alphabet": "abc", "n_train": 60, "n_val": 10, "n_test": 10}


@pytest.fixture(scope="module")
def trained():
    """A tiny LSTM with attention trained briefly on reverse (lengths 2-4): right on some examples, not all."""
    torch.manual_seed(0)
    task = make_task("reverse", seed=0, **SMALL)
    model = build_model(model_config("lstm+attention", task.tokenizer, embed_dim=8, hidden_size=16, max_len=12))
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
    rows = compare.accuracy_by_length(model, task, lengths=[2, 3, 5], n=30, seed=1)
    assert [r["length"] for r in rows] == [2, 3, 5]
    assert [r["trained"] for r in rows] == [True, True, False]
    for row in rows:
        examples = compare.examples_of_length(task, row["length"], n=30, seed=1)
        exact, right, tokens = greedy_counts(model, task, examples)
        assert row["examples"] == len(examples)
        assert row["exact_match"] == pytest.approx(exact / len(examples))
        assert row["token_accuracy"] == pytest.approx(right / tokens)
    assert 0 < rows[1]["exact_match"] < 1  # the brief training makes the check non-trivial


def test_examples_of_length_use_the_task_alphabet_and_tokenizer(trained):
    _, task = trained
    other = make_task("reverse", seed=0, **SMALL)
    for src, tgt in compare.examples_of_length(task, 7, n=20):
        assert len(src) == 7 and set(src) <= set("abc") and tgt == src[::-1]
    assert compare.examples_of_length(task, 7, n=20) == compare.examples_of_length(other, 7, n=20)
    assert len(compare.examples_of_length(task, 1, n=200)) == 1  # only 3 strings of length 1 exist


def test_lengths_beyond_max_len_are_reported_not_run(trained):
    model, task = trained  # max_len=12: source 11 letters + EOS fits, 12 letters + EOS do not
    rows = compare.accuracy_by_length(model, task, lengths=[11, 12], n=5)
    assert rows[0]["exact_match"] is not None and rows[0]["note"] == ""
    assert rows[1]["exact_match"] is None and "beyond max_len" in rows[1]["note"]


def test_dates_are_grouped_by_source_length():
    task = make_task("dates", seed=0, n_train=50, n_val=10, n_test=40)
    model = build_model(model_config("lstm", task.tokenizer, embed_dim=8, hidden_size=16))
    rows = compare.accuracy_by_length(model, task)
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
    per_architecture = {a: compare.forward_cost(tiny_config(a), lengths, batch_size=2, repeats=1)
                        for a in ("transformer", "lstm+attention", "lstm")}
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
    assert compare.activation_bytes(TanhOfEmbedding(), src, src) == 3 * 5 * 8 + 3 * 5 * 6 * 4  # int64 ids, float out


def test_reference_and_error_marks():
    task = make_task("dates", seed=0, n_train=50, n_val=10, n_test=10)
    src, tgt = task.test[0]
    assert compare.reference(task, src) == tgt
    assert compare.reference(task, "not a date") is None
    assert compare.reference(make_task("reverse", seed=0, **SMALL), "abc") == "cba"
    assert compare.error_marks("abxde", "abcd") == [("a", "ok"), ("b", "ok"), ("x", "wrong"), ("d", "ok"), ("e", "extra")]
    assert compare.error_marks("ab", "abc") == [("a", "ok"), ("b", "ok"), ("c", "missing")]


def test_translate_rejects_unknown_characters(trained):
    model, task = trained
    assert set(compare.translate(model, task.tokenizer, "abc")) <= set("abc")
    with pytest.raises(ValueError, match="xyz"):
        compare.translate(model, task.tokenizer, "abxyz")


@pytest.mark.parametrize("architecture", ["transformer", "lstm+attention", "lstm"])
def test_alignment_equals_the_attention_of_step_by_step_decoding(architecture):
    torch.manual_seed(0)
    task = make_task("reverse", seed=0, **SMALL)
    model = build_model(tiny_config(architecture)).eval()
    ids = task.tokenizer.encode("abca") + [task.tokenizer.eos_id]
    decoded = greedy(model, task.tokenizer, ids, max_new_tokens=6, trace=True)
    output = task.tokenizer.decode(decoded.ids())
    patterns, src_labels, tgt_labels = compare.alignment(model, task.tokenizer, "abca", output)
    assert src_labels == ["a", "b", "c", "a", "<eos>"]
    assert tgt_labels == list(output) + ["<eos>"]
    expected = {"transformer": ["decoder.layers.0.cross_attn.hook_pattern"],
                "lstm+attention": ["decoder.attention.hook_pattern"], "lstm": []}[architecture]
    assert list(patterns) == expected
    for name, pattern in patterns.items():
        steps = decoded.attention(name)[:, :len(tgt_labels)]  # (H, N, S), one row per decoding step
        assert pattern.shape == (steps.shape[0], len(tgt_labels), len(src_labels))
        assert torch.allclose(torch.from_numpy(pattern), steps, atol=1e-5)


def test_curves_and_summary_of_contenders():
    model = build_model(tiny_config("lstm"))
    history = {"step": [1, 2, 3], "loss": [3.0, 2.0, 1.5], "time": [0.1, 0.3, 0.5]}
    evals = {"step": [3], "time": [0.5], "exact_match": [0.25]}
    c = compare.Contender("LSTM", model, None, history, evals)
    assert compare.curve([c], "loss", "time") == {"LSTM": ([0.1, 0.3, 0.5], [3.0, 2.0, 1.5])}
    assert compare.curve([c], "exact_match") == {"LSTM": ([3], [0.25])}
    assert compare.curve([c], "token_accuracy") == {}
    row, = compare.summary([c])
    assert row["parameters"] == sum(p.numel() for p in model.parameters())
    assert row["ms per step"] == pytest.approx(200.0)
    assert (row["steps"], row["val exact match"]) == (3, 0.25)
