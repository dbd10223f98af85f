"""The "RNN vs attention" page through AppTest: shipped models side by side, accuracy by length against decoding
every example, and training all three here (saved, found again after a restart, Stop leaves out untrained ones)."""
import json

import pytest
import torch
from page_helpers import APP, array, charts
from streamlit.testing.v1 import AppTest

from attnviz import build_model
from attnviz.app import markdown
from attnviz.data.tasks import make_task
from attnviz.decoding.search import greedy
from attnviz.interpret import contenders
from attnviz.interpret.comparison import examples_of_length
from attnviz.interpret.contenders import checkpoint_name, runs_of
from attnviz.models.architectures import model_config
from attnviz.training import checkpoint, checkpoint_folder
from attnviz.training.config import TrainConfig
from attnviz.training.loop import train
from attnviz.training.owners import short_id
from attnviz.training.runs import REGISTRY, run_meta

PAGE = "pages/rnn_vs_attention.py"
TASKS = {"reverse": {"min_len": 2, "max_len": 4, "alphabet": "abc", "n_train": 90, "n_val": 8, "n_test": 8},
         "reverse-long": {"min_len": 2, "max_len": 6, "alphabet": "ab", "n_train": 60, "n_val": 8, "n_test": 8}}
SIZES = {"transformer": {"d_model": 16, "n_heads": 2, "d_ff": 32},
         "lstm+bahdanau": {"embed_dim": 8, "hidden_size": 16}, "lstm": {"embed_dim": 8, "hidden_size": 16}}
LABELS = list(contenders.LABELS.values())


def tiny(task_key, architecture, seed=0, steps=60):
    """(task, model, train config) like a preset of the page, but tiny."""
    task = make_task("reverse", seed=seed, **TASKS[task_key])
    torch.manual_seed(seed)
    model = build_model(model_config(architecture, task.tokenizer, **SIZES[architecture]))
    return task, model, TrainConfig(steps=steps, batch_size=16, lr=1e-2, warmup=5, eval_every=20, snapshot_every=0,
                                    device="cpu", seed=seed)


@pytest.fixture(scope="module")
def shipped_dir(tmp_path_factory):
    """Shipped checkpoints of both reverse tasks, three architectures each, trained briefly (right on some
    examples, not all), saved with the meta of a real run."""
    folder = tmp_path_factory.mktemp("shipped")
    for task_key in TASKS:
        for architecture in contenders.LABELS:
            task, model, config = tiny(task_key, architecture)
            result = train(model, task, config)
            checkpoint.save_checkpoint(folder / checkpoint_name(task_key, architecture), model.eval(),
                                       task.tokenizer, run_meta(model, task, config, result))
    return folder


@pytest.fixture
def dirs(tmp_path, monkeypatch, shipped_dir):
    monkeypatch.setattr(checkpoint_folder, "SHIPPED_DIR", shipped_dir)
    monkeypatch.setattr(checkpoint_folder, "USER_DIR", tmp_path)
    return shipped_dir, tmp_path


def open_page(owner=None, **query_params):
    """The page in a new session; `owner` sets its browser's owner token (AppTest sends no cookies, so
    ui.browser_owner takes the session's "owner_token"): the same owner is the same browser after a reload."""
    at = AppTest.from_file(APP, default_timeout=60)
    if owner:
        at.session_state["owner_token"] = owner
    at.query_params.update(query_params)
    at = at.switch_page(PAGE).run()
    assert not at.exception
    return at


def meta_of(folder, task_key, architecture):
    return json.loads((folder / checkpoint_name(task_key, architecture) / "meta.json").read_text())


def test_shipped_models_side_by_side(dirs):
    shipped, _ = dirs
    at = open_page()
    metas = [meta_of(shipped, "reverse", a) for a in contenders.LABELS]
    summary = at.dataframe[0].value
    assert list(summary["model"]) == LABELS
    assert list(summary["steps"]) == [m["history"]["step"][-1] for m in metas]
    assert list(summary["val exact match"]) == pytest.approx([m["evals"]["exact_match"][-1] for m in metas])
    loss = charts(at)["rnn_loss"]
    assert [trace["name"] for trace in loss["data"]] == LABELS
    assert array(loss["data"][1]["y"]) == pytest.approx(metas[1]["history"]["loss"])
    at.radio(key="rnn_curve_x").set_value("time").run()
    assert array(charts(at)["rnn_loss"]["data"][2]["x"]) == pytest.approx(metas[2]["history"]["time"])

    source = at.text_input(key="rnn_input_reverse").value
    outputs = [m.value for m in at.markdown if m.value.startswith("**") and "<code>" in m.value]
    assert [o.split("**")[1] for o in outputs] == LABELS
    assert any(markdown.code(source[::-1]) in m.value for m in at.markdown)  # the right answer
    figures = charts(at)
    bahdanau, head = array(figures["rnn_align_lstm"]["data"][0]["z"]), array(figures["rnn_align_transformer"]["data"][0]["z"])
    # one row per output token + EOS, one column per source token + EOS; weights over the source sum to 1
    assert bahdanau.shape == head.shape == (len(source) + 1, len(source) + 1)
    assert bahdanau.sum(1) == pytest.approx(1, abs=1e-5) and head.sum(1) == pytest.approx(1, abs=1e-5)
    at.selectbox(key="rnn_head").set_value(1).run()
    assert not at.exception
    at.text_input(key="rnn_input_reverse").set_value("abz").run()  # "z" is not in this task's alphabet
    assert not at.exception and "'z'" in at.error[0].value.replace("\\", "")  # the message is escaped Markdown
    assert {"rnn_by_length", "rnn_cost_forward_ms"} <= set(charts(at))  # the rest of the page goes on

    weights = charts(at)["rnn_cost_attention_weights"]["data"]
    lengths = array(weights[0]["x"])
    assert list(lengths) == [16, 32, 64, 128, 256, 512]
    assert list(array(weights[0]["y"])) == [3 * 2 * n * n for n in lengths]  # 3 attention modules x 2 heads x T x T
    assert list(array(weights[1]["y"])) == [n * n for n in lengths] and not array(weights[2]["y"]).any()
    at.multiselect(key="rnn_cost_lengths").set_value([]).run()
    assert not at.exception


def exact_by_decoding(model, task, length):
    """Exact match over the page's fresh examples of one length, decoding each alone and checking the rule."""
    examples = examples_of_length(task, length, n=200, seed=1)
    right = 0
    for src, _ in examples:
        ids = task.tokenizer.encode(src) + [task.tokenizer.eos_id]
        right += task.tokenizer.decode(greedy(model, task.tokenizer, ids, len(src) + 2, trace=False).ids()) == src[::-1]
    return right / len(examples)


def test_accuracy_by_length_is_the_share_of_examples_decoded_right(dirs):
    shipped, _ = dirs
    at = open_page()
    assert at.radio(key="rnn_length_task").value == "reverse-long"  # the models trained on lengths 2-6 here
    at.slider(key="rnn_longest_reverse-long").set_value(8).run()
    figure = charts(at)["rnn_by_length"]
    assert [trace["name"] for trace in figure["data"]] == LABELS
    values = {}
    for trace, architecture in zip(figure["data"], contenders.LABELS):
        ckpt = checkpoint.load_checkpoint(shipped / checkpoint_name("reverse-long", architecture))
        assert list(array(trace["x"])) == [2, 3, 4, 5, 6, 7, 8]
        values[architecture] = [exact_by_decoding(ckpt.model, ckpt.task(), n) for n in range(2, 9)]
        assert array(trace["y"]) == pytest.approx(values[architecture])
    assert any(0 < v < 1 for vs in values.values() for v in vs)  # brief training: a real mix of right and wrong
    trend = next(m.value for m in at.markdown if m.value.startswith("Exact match from length 2 to length 6"))
    for label, architecture in zip(LABELS, contenders.LABELS):
        assert f"{label} {values[architecture][0]:.0%} → {values[architecture][4]:.0%}" in trend
    assert any("Cho et al. (2014" in c.value for c in at.caption)
    at.radio(key="rnn_length_task").set_value("dates").run()  # no shipped dates models in this folder
    assert not at.exception and "rnn_by_length" not in charts(at)


def test_missing_shipped_models_say_how_to_get_them(monkeypatch, tmp_path):
    monkeypatch.setattr(checkpoint_folder, "SHIPPED_DIR", tmp_path)
    monkeypatch.setattr(checkpoint_folder, "USER_DIR", tmp_path)
    at = open_page()
    assert any("Train all three here" in i.value for i in at.info)
    assert not at.get("plotly_chart")


@pytest.fixture
def tiny_presets(monkeypatch):
    """The page's presets made tiny; `steps` sets how long they train."""
    steps = {"n": 30}

    def build_preset(name, seed=0):
        task_key, architecture = next((t, name[len(t) + 1:]) for t in sorted(TASKS, key=len, reverse=True)
                                      if name.startswith(t + "-"))
        return tiny(task_key, architecture, seed, steps["n"])

    monkeypatch.setattr(contenders, "build_preset", build_preset)
    return steps


def test_train_all_three_here_saves_them_and_a_restart_finds_them(dirs, tiny_presets, monkeypatch, wait_for_run):
    _, user = dirs
    at = open_page(owner="tab1", rnn_source="here")
    assert not at.get("plotly_chart")
    at.button(key="rnn_train").click().run()
    runs = runs_of("reverse", "tab1")
    assert list(runs) == list(contenders.LABELS) and len({run.task.seed for run in runs.values()}) == 1
    for run in runs.values():
        wait_for_run(run, timeout=60)
    at.run()
    assert not at.exception
    assert list(at.dataframe[0].value["steps"]) == [30, 30, 30]
    names = [f"reverse-{a}-{short_id('tab1')}" for a in ("transformer", "lstm-bahdanau", "lstm")]
    assert all((user / name / "meta.json").exists() for name in names)
    picker = at.selectbox(key="model").options  # the model picker lists them as yours
    assert all(f"{name} (reverse, yours)" in picker for name in names)

    monkeypatch.setattr(REGISTRY, "runs", [])  # the server restarted: only the saved checkpoints remain
    at = open_page(owner="tab1", rnn_source="here")
    assert list(at.dataframe[0].value["model"]) == LABELS and list(at.dataframe[0].value["steps"]) == [30, 30, 30]


def test_stop_leaves_out_models_that_never_trained(dirs, tiny_presets, monkeypatch, wait_for_run):
    _, user = dirs
    tiny_presets["n"] = 100_000
    monkeypatch.setattr(REGISTRY, "max_concurrent", 1)  # the Transformer trains, the LSTMs wait in the queue
    at = open_page(owner="tab2", rnn_source="here")
    at.button(key="rnn_train").click().run()
    runs = runs_of("reverse", "tab2")
    wait_for_run(runs["transformer"], lambda snap: snap.step >= 2, what="step 2")
    at.button(key="rnn_stop").click().run()
    for run in runs.values():
        run.join(60)
    at.run()
    assert not at.exception
    assert [run.result.step > 0 for run in runs.values()] == [True, False, False]
    assert list(at.dataframe[0].value["model"]) == ["Transformer"]
    assert not (user / checkpoint_name("reverse", "lstm", "tab2")).exists()


def saved_lstm(name, meta):
    """A briefly trained plain LSTM of the reverse task saved under `name` with `meta` (an owner); its meta.json."""
    task, model, config = tiny("reverse", "lstm", steps=2)
    path = checkpoint.save_checkpoint(name, model, task.tokenizer, {**run_meta(model, task, config,
                                                                              train(model, task, config)), **meta})
    return path / "meta.json"


def test_the_url_cannot_make_you_another_owner(dirs, tiny_presets, wait_for_run):
    """The attack of issue 13: ?rnn_session=victim1 made "Train all three" replace reverse-lstm-victim1."""
    victims = [saved_lstm("reverse-lstm-victim1", {"owner": "victim1"}),
               saved_lstm(checkpoint_name("reverse", "lstm", "victim1"), {"owner": "victim1"})]
    before = [meta.read_bytes() for meta in victims]
    at = open_page(owner="mallory", rnn_source="here", rnn_session="victim1", rnn_task="reverse")
    at.button(key="rnn_train").click().run()
    runs = runs_of("reverse", "mallory")
    assert [run.name for run in runs.values()] == [checkpoint_name("reverse", a, "mallory") for a in contenders.LABELS]
    assert runs_of("reverse", "victim1") == {}
    for run in runs.values():
        wait_for_run(run, timeout=60)
    assert [meta.read_bytes() for meta in victims] == before


def test_a_name_holding_someone_elses_model_is_refused_and_nothing_starts(dirs, tiny_presets):
    _, user = dirs
    taken = checkpoint_name("reverse", "lstm", "eve")  # say, two browsers whose short ids collide
    meta = saved_lstm(taken, {"owner": "someone", "trained_by": "Ada"})
    before = meta.read_bytes()
    at = open_page(owner="eve", rnn_source="here")
    at.button(key="rnn_train").click().run()
    assert any("is taken: it holds a model trained by Ada" in e.value.replace("\\", "") for e in at.error)
    assert runs_of("reverse", "eve") == {} and meta.read_bytes() == before
    assert not (user / checkpoint_name("reverse", "transformer", "eve")).exists()  # all three or none
