"""attnviz.app.train_view (what Train live shows, in the session's language), attnviz.training.plan, and the probe
outputs that the training snapshots carry."""
import shutil
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from page_helpers import figure_texts, latin_words

from attnviz import TransformerConfig, build_model, capture
from attnviz.app.markdown import escape
from attnviz.app.train_view import (CLASS_PRESETS, HISTORY_COLUMNS, MORE_FIELDS, RUNS_COLUMNS, SIZE_FIELDS,
                                    TRAIN_FIELDS, attention_kinds, best_metric, curve_figures, lapse_pattern,
                                    output_history, preset_fixed_sizes, preset_labels, preset_name, preset_settings,
                                    probe_ids, run_metrics, run_notices, runs_table, size_fields, size_note,
                                    smoothed, status_text, task_architectures, time_left)
from attnviz.data.tasks import make_task
from attnviz.data.tokenizers import CharTokenizer
from attnviz.decoding.search import greedy
from attnviz.models.architectures import check_size, model_config
from attnviz.training import checkpoint_folder
from attnviz.training.config import TrainConfig
from attnviz.training.loop import attention_snapshot, probe_outputs
from attnviz.training.plan import check_name, free_name, name_taken, plan_run, start
from attnviz.training.presets import PRESETS
from attnviz.training.runs import RunRegistry, RunSnapshot


@pytest.fixture(scope="module")
def task():
    return make_task("reverse", n_train=64, n_val=16, n_test=16)


def tiny_model(task, seed=0):
    torch.manual_seed(seed)
    v = task.tokenizer.vocab_size
    return build_model(TransformerConfig(v, v, d_model=16, n_heads=2, d_ff=32)).eval()


def test_probe_outputs_are_each_probe_decoded_alone(task):
    model = tiny_model(task)
    probes = task.collate(task.probes)
    batched = probe_outputs(model, task, probes)  # padded sources in one batch
    limit = probes.tgt_out.shape[1] + 4  # the same room to decode as probe_outputs gives
    for (src, _), output in zip(task.probes, batched):
        alone = greedy(model, task.tokenizer, task.encode_source(src), limit, trace=False)
        assert output == task.tokenizer.decode(alone.ids())


def test_lm_probe_outputs_continue_the_prompt():
    task = make_task("text", text=" ".join(f"line {i} says {i * 7 % 13}." for i in range(200)), block_size=24)
    model = build_model(TransformerConfig(task.tokenizer.vocab_size, task.tokenizer.vocab_size, d_model=16, n_heads=2,
                                          d_ff=32, n_encoder_layers=0)).eval()
    outputs = probe_outputs(model, task, task.collate(task.probes))
    prompt = [task.tokenizer.bos_id, *task.probes[0][:8]]
    assert outputs[0] == task.tokenizer.decode(greedy(model, task.tokenizer, prompt, 16, trace=False).ids())


def test_lapse_pattern_is_one_probe_cropped_to_its_tokens(task):
    model = tiny_model(task)
    patterns = attention_snapshot(model, task.collate(task.probes))
    probe = 1
    src, tgt = probe_ids(task, probe)
    with capture(model) as alone:
        model(torch.tensor([src]), torch.tensor([tgt]))
    kinds = attention_kinds(patterns)
    assert kinds == {"encoder self": 1, "decoder self": 1, "cross": 1}
    for kind, name in [("encoder self", "encoder.layers.0.self_attn"), ("decoder self", "decoder.layers.0.self_attn"),
                       ("cross", "decoder.layers.0.cross_attn")]:
        weights, queries, keys, masked = lapse_pattern(task, patterns, probe, kind, 0)
        expected = alone[f"{name}.hook_pattern"][0].numpy()  # (H, Tq, Tk)
        np.testing.assert_allclose(weights, expected, atol=2e-3)  # float16 snapshots
        assert (len(queries), len(keys)) == expected.shape[1:]
        assert (masked is not None) == (kind == "decoder self")
        if masked is not None:
            assert not weights[:, masked].any()  # nothing on future tokens


def test_smoothing_is_the_bias_corrected_moving_average():
    values = list(np.random.default_rng(0).random(50))
    reference = pd.Series(values).ewm(alpha=0.1, adjust=True).mean()  # sum of w^k x / sum of w^k
    np.testing.assert_allclose(smoothed(values, weight=0.9), reference)


def snapshot(step, elapsed, steps=100):
    return RunSnapshot("r", "", "running", 0, step, steps, elapsed, {}, {}, {}, [], "", "", "cpu", 0.0)


def test_time_left_from_the_pace_and_the_time_limit():
    assert time_left(snapshot(0, 0.0), TrainConfig()) is None
    assert time_left(snapshot(25, 10.0), TrainConfig(steps=100)) == pytest.approx(30.0)
    assert time_left(snapshot(25, 10.0), TrainConfig(steps=100, time_budget=15)) == pytest.approx(5.0)


def test_best_metric_by_kind():
    assert best_metric({"exact_match": [0.2, 0.9, 0.8]}, "seq2seq") == ("exact match", "90.0%")
    assert best_metric({"perplexity": [9.0, 4.5, 5.0], "exact_match": []}, "lm") == ("perplexity", "4.50")
    assert best_metric({}, "seq2seq") is None


def test_names_taken_and_free(task, make_checkpoint):
    registry = RunRegistry(1)
    make_checkpoint(checkpoint_folder.USER_DIR / "live-a")
    assert name_taken("live-a", registry) and not name_taken("live-b", registry)
    assert free_name("live-a", registry) == "live-a-2"
    assert free_name("rev+lstm a", registry) == "rev-lstm-a"
    with pytest.raises(ValueError, match="exists already"):
        check_name("live-a", registry)
    with pytest.raises(ValueError, match="cannot name a checkpoint"):
        check_name("../x", registry)


def test_plan_checks_before_anything_runs(task):
    registry = RunRegistry(1)
    with pytest.raises(ValueError, match="does not fit"):
        plan_run(task, "lm", {}, {}, "live-plan", registry=registry)
    with pytest.raises(ValueError, match="n_heads"):
        plan_run(task, "transformer", {"d_model": 16, "n_heads": 3}, {}, "live-plan", registry=registry)
    with pytest.raises(ValueError, match="lr"):
        plan_run(task, "transformer", {}, {"lr": 5.0}, "live-plan", registry=registry)
    plan = plan_run(task, "lstm+bahdanau", {"hidden_size": 16}, {"steps": 5}, "live-plan", "  Ada ",
                         registry=registry)
    assert plan.trained_by == "Ada" and plan.train.steps == 5 and plan.n_parameters > 0


def test_every_preset_fills_every_field():
    for label in preset_labels():
        settings = preset_settings(label)
        preset = PRESETS[preset_name(label)]
        assert (settings["task"], settings["architecture"]) == (preset.task, preset.architecture)
        fields = size_fields(preset.architecture) + TRAIN_FIELDS + MORE_FIELDS
        for field in fields:
            assert type(settings[field.key]) is type(field.step), (label, field.key, settings[field.key])
        sizes = {f.key: settings[f.key] for f in size_fields(preset.architecture)}  # what the form starts at
        check_size(model_config(preset.architecture, CharTokenizer("abcdefgh"), **sizes))  # the library accepts it
        TrainConfig(**{f.key: settings[f.key] for f in TRAIN_FIELDS + MORE_FIELDS})
        assert task_architectures(preset.task)[0] in ("transformer", "lm")
        assert preset.architecture in task_architectures(preset.task)


def test_a_name_taken_meanwhile_is_refused_or_renamed(task, make_checkpoint, wait_for_run):
    registry = RunRegistry(1)
    plan = plan_run(task, "transformer", {"d_model": 16, "n_heads": 2, "d_ff": 32}, {"steps": 1}, "live-race",
                         registry=registry)
    make_checkpoint(checkpoint_folder.USER_DIR / "live-race")  # another tab's run, saved after this plan was checked
    with pytest.raises(ValueError, match="exists already"):
        start(plan, "tab-a", registry)
    run = start(plan, "tab-a", registry, rename_from="live-race")  # a suggested name: the next free one instead
    assert run.name == "live-race-2"
    wait_for_run(run, timeout=60)
    assert (checkpoint_folder.USER_DIR / "live-race-2" / "meta.json").exists()
    shutil.rmtree(checkpoint_folder.USER_DIR / "live-race-2")


def test_output_history_newest_first_and_right_only_for_seq2seq(task):
    target = task.probes[0][1]
    snapshots = [{"step": step, "outputs": [output] * 4} for step, output in [(1, "x"), (5, target), (9, "y")]]
    table = output_history(task, snapshots, 0, upto=1)
    assert table.to_dict("list") == {"step": [5, 1], "output": [target, "x"], "right": [True, False]}
    lm = make_task("text", text=" ".join(f"line {i} says {i * 7 % 13}." for i in range(200)), block_size=24)
    assert list(output_history(lm, snapshots, 0, upto=2).columns) == ["step", "output"]


def test_a_preset_keeps_the_sizes_it_sets_without_a_field():
    label = "90 seconds: watch an induction head form (attention-only, 2 layers)"
    assert preset_fixed_sizes(label, "lm") == {"positional": "learned"}
    assert preset_fixed_sizes(label, "transformer") == {}  # another architecture: the preset does not apply
    assert preset_settings(label)["d_ff"] == 0  # attention only, a value the d_ff field takes


def test_a_run_queued_by_the_cluster_says_so_and_a_placed_one_names_its_node():
    queued_here = RunSnapshot("r", "", "queued", 2, 0, 10, 0.0, {}, {}, {}, [], "", "", "cpu", 0.0)
    on_cluster = RunSnapshot("r", "", "queued", 0, 0, 10, 0.0, {}, {}, {}, [], "", "", "cpu", 0.0)
    placed = RunSnapshot("r", "", "running", 0, 3, 10, 1.0, {}, {}, {}, [], "", "", "cpu", 0.0, node="10.0.0.7")
    assert status_text(None, "queued", 2) == "queued (place 2)"
    assert status_text(None, "queued", 0) == "waiting for a free worker on the cluster"
    assert [text for _, text in run_notices(None, queued_here)] == [
        "Waiting for a free slot: you are number 2 in the queue."]
    assert [text for _, text in run_notices(None, on_cluster)] == [
        "Waiting for a free worker on the cluster: every worker is busy."]
    assert [text for _, text in run_notices(None, placed)] == ["Training on the cluster node " + escape("10.0.0.7") + "."]  # the node name is escaped


def test_the_runs_table_adds_the_runs_of_the_other_web_servers(task):
    registry = RunRegistry(1)
    theirs = [{"name": "elsewhere", "owner": "bob", "server": "web-2:77", "status": "running", "step": 12,
               "steps": 350, "node": "10.0.0.9"},
              {"name": "waiting", "owner": "", "server": "web-3:5", "status": "queued", "step": 0, "steps": 350,
               "node": ""}]
    table = runs_table("viewer", registry, shared=lambda: theirs)
    assert table["model"].tolist() == ["elsewhere", "waiting"]
    assert table["status"].tolist() == ["training on 10.0.0.9", "waiting for a free worker on the cluster"]
    assert table["who"].tolist() == ["bob", "–"] and table["started"].tolist() == ["on web-2:77", "on web-3:5"]
    assert runs_table("viewer", registry).empty  # here, with no cluster, only this server's runs (none)


def test_the_fields_are_labelled_in_the_sessions_language(chinese):
    fields = [*SIZE_FIELDS["transformer"], *SIZE_FIELDS["rnn"], *TRAIN_FIELDS, *MORE_FIELDS]
    assert [f.label for f in fields] == [chinese.gettext(f.name) for f in fields]
    assert {f.label for f in fields} & {f.name for f in fields} == {"d_model", "d_ff"}  # config names stay
    assert all(f.help == chinese.gettext(f.hint) != f.hint for f in fields if f.hint)
    assert {f.help for f in fields if not f.hint} == {""}  # not the catalog's header, the translation of ""
    assert all(chinese.gettext(label) != label for label in CLASS_PRESETS)  # a page shows them translated


def test_a_chinese_run_panel_and_runs_table(chinese, task):
    run = SimpleNamespace(config=TrainConfig(steps=10), task=task, done=False, name="live-zh")
    history = {"step": [1, 2], "loss": [2.0, 1.5], "lr": [1e-3, 1e-3], "tokens_per_s": [900.0, 1000.0]}
    evals = {"step": [2], "loss": [1.4], "token_accuracy": [0.5], "exact_match": [0.25]}
    snap = RunSnapshot("live-zh", "", "running", 0, 2, 10, 1.0, history, evals, {}, [], "", "checkpoints/x", "cpu",
                       0.0, node="10.0.0.7")
    metrics = run_metrics(run, snap, active=True)
    assert list(metrics)[:3] == [chinese.gettext("Status"), chinese.gettext("Step"), chinese.gettext("Time left")]
    assert metrics[chinese.gettext("Status")] == chinese.gettext("training")
    assert chinese.gettext("Best {metric}").format(metric=chinese.gettext("exact match")) in metrics
    assert latin_words([*metrics, *metrics.values()]) == {"CPU"}  # the device's name, no English word
    notices = [text for _level, text in run_notices(run, snap)]
    assert notices == [chinese.gettext("Training on the cluster node {node}.").format(node=escape("10.0.0.7")),
                       chinese.gettext("Saved as **{name}**: pick it in the model picker in the sidebar, on every "
                                       "page.").format(name=escape("live-zh"))]
    assert status_text(run, "queued", 2) == chinese.gettext("queued (place {place})").format(place=2)
    assert latin_words([size_note(12345)]) == set()
    for name, fig in curve_figures(snap).items():
        assert latin_words(figure_texts(fig)) == set(), name
    theirs = [{"name": "elsewhere", "owner": "bob", "server": "web-2:77", "status": "running", "step": 12,
               "steps": 350, "node": "10.0.0.9"}]
    table = runs_table("viewer", RunRegistry(1), shared=lambda: theirs)
    assert list(table.columns) == [chinese.gettext(column) for column in RUNS_COLUMNS]
    assert table[chinese.gettext("status")].tolist() == [
        chinese.gettext("{status} on {node}").format(status=chinese.gettext("training"), node="10.0.0.9")]
    assert table[chinese.gettext("started")].tolist() == [chinese.gettext("on {server}").format(server="web-2:77")]
    history_table = output_history(task, [{"step": 1, "outputs": ["x"] * 4}], 0, upto=0)
    assert list(history_table.columns) == [chinese.gettext(column) for column in HISTORY_COLUMNS]
