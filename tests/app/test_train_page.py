"""The Train live page through AppTest: settings checked before a start, a tiny run trained to the end and saved,
stopping, queueing, errors where the user looks, and a second tab that finds the run and the saved model.

AppTest never fires `run_every` fragments, so the tests join the run (it lives in the process-wide registry)
and run the page again, as the fragment would.
"""
import base64
import json
import shutil

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from page_helpers import shown

from attnviz.app.train_view import preset_labels, preset_name
from attnviz.models.architectures import RNN_SIZES
from attnviz.training import checkpoint
from attnviz.training.plan import free_name
from attnviz.training.presets import PRESETS
from attnviz.training.executor import ThreadExecutor
from attnviz.training.runs import REGISTRY, TrainingRun

APP = "../../app.py"
PAGE = "pages/train.py"
TINY = {"d_model": 16, "n_heads": 2, "d_ff": 32, "steps": 20, "eval_every": 10, "snapshot_every": 10,
        "time_budget": 0}


def open_page(**query_params):
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(query_params)
    at.switch_page(PAGE)
    return at.run()


def set_numbers(at, **values):
    for key, value in values.items():
        at.number_input(key=f"train_{key}").set_value(value)
    return at


def chart(at, key):
    """The figure JSON of the plotly chart with widget key `key`."""
    return next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if c.proto.id.endswith(key))


def table_with(at, column):
    """The dataframe shown with this column (AppTest does not give dataframes their keys)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def traces(at, key):
    """{trace name: {"x": array, "y": array}} of a chart (plotly sends arrays as base64 `bdata`)."""
    def array(values):
        if isinstance(values, dict):
            return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
        return np.asarray(values, dtype=float)
    return {t["name"]: {"x": array(t["x"]), "y": array(t["y"])} for t in chart(at, key)["data"]}


@pytest.fixture
def saved():
    """Names of runs a test starts; their checkpoints are deleted afterwards."""
    names = []
    yield names
    for name in names:
        shutil.rmtree(checkpoint.USER_DIR / name, ignore_errors=True)


def start_tiny(at, name, saved, **numbers):
    set_numbers(at, **{**TINY, **numbers})
    at.text_input(key="train_name").set_value(name)
    at.run()
    assert not at.error, [e.value for e in at.error]
    saved.append(name)
    at.button(key="train_start").click().run()
    return REGISTRY.find(name)


def test_tiny_run_trains_shows_curves_and_is_saved(saved, wait_for_run):
    at = open_page()
    assert not at.exception
    at.text_input(key="train_owner").set_value("Ada")
    run = start_tiny(at, "page-tiny", saved)
    assert run is not None and at.session_state["train_run"] == "page-tiny"
    assert at.query_params["run"] == "page-tiny"
    wait_for_run(run, timeout=120)
    at.run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Status"] == "done" and metrics["Step"] == "20 / 20"
    assert any("Saved as **page-tiny**" in s.value for s in at.success)
    assert (checkpoint.USER_DIR / "page-tiny" / "meta.json").exists()

    loss = traces(at, "curve_loss")
    assert list(loss["training (moving average)"]["x"]) == list(range(1, 21))
    assert list(loss["validation"]["x"]) == [10, 20]
    snap = run.snapshot()
    np.testing.assert_allclose(loss["validation"]["y"], snap.evals["loss"])
    assert list(traces(at, "curve_lr")["learning rate"]["y"]) == pytest.approx(snap.history["lr"])

    # The time-lapse: the newest snapshot first, then slide back to the first one.
    assert [s["step"] for s in snap.snapshots] == [1, 10, 20]
    assert chart(at, "lapse_heatmap")["layout"]["title"]["text"].startswith("Step 20:")
    at.select_slider(key="lapse_step").set_value(1).run()
    assert chart(at, "lapse_heatmap")["layout"]["title"]["text"].startswith("Step 1:")
    outputs = table_with(at, "output")
    assert list(outputs["step"]) == [1] and outputs["output"][0] == snap.snapshots[0]["outputs"][0]

    table = table_with(at, "who")
    row = table[table["model"] == "page-tiny"].iloc[0]
    assert (row["who"], row["task"], row["architecture"], row["status"], row["step"]) == \
        ("Ada", "reverse", "transformer", "done", "20/20")
    assert row["best"].startswith("exact match")

    picker = at.sidebar.selectbox(key="model")  # the saved model is in every page's picker at once
    assert any(option.startswith("page-tiny ") for option in picker.options)
    assert at.text_input(key="train_name").value == free_name("reverse-transformer")  # ready for the next run


def test_a_second_tab_and_a_reload_find_the_run_and_its_model(saved, wait_for_run):
    first = open_page()
    run = start_tiny(first, "page-shared", saved)
    del first  # the tab is gone: its run goes on in the registry, finishes, and is saved
    wait_for_run(run, timeout=120)

    second = open_page()  # another browser tab: a session of its own
    assert any(option.startswith("page-shared ") for option in second.sidebar.selectbox(key="model").options)
    assert "page-shared" in list(table_with(second, "who")["model"])
    assert not any(s.value.startswith("Run ") for s in second.subheader)  # it follows no run of its own

    reloaded = open_page(run="page-shared")  # a reload keeps ?run= in the URL
    assert any(s.value == "Run page-shared" for s in reloaded.subheader)
    assert {m.label: m.value for m in reloaded.metric}["Status"] == "done"


def test_stop_ends_the_run_and_saves_it(saved, wait_for_run):
    at = open_page()
    run = start_tiny(at, "page-stop", saved, steps=20_000)
    wait_for_run(run, lambda snap: snap.step >= 2, what="step 2")
    at.run()
    assert {m.label: m.value for m in at.metric}["Status"] == "training"
    assert at.button(key="train_start").disabled  # one run per tab at a time
    at.button(key="train_stop").click().run()
    wait_for_run(run, timeout=120)
    at.run()
    assert run.snapshot().status == "stopped" and run.snapshot().step < 20_000
    assert {m.label: m.value for m in at.metric}["Status"] == "stopped"
    assert any("Saved as **page-stop**" in s.value for s in at.success)


def test_a_queued_user_sees_their_place(saved, monkeypatch):
    monkeypatch.setattr(REGISTRY, "max_concurrent", 1)
    other = open_page()
    busy = start_tiny(other, "page-busy", saved, steps=20_000)
    at = open_page()
    start_tiny(at, "page-waiting", saved)
    assert {m.label: m.value for m in at.metric}["Status"] == "queued"
    assert any("number 1 in the queue" in i.value for i in at.info)
    busy.stop()


@pytest.mark.parametrize("numbers, name, message", [
    ({"d_model": 64, "n_heads": 3}, "page-bad", "n_heads"),
    ({"d_model": 512, "d_ff": 2048, "n_encoder_layers": 6, "n_decoder_layers": 6}, "page-big", "the limit here is"),
    ({}, "no/slashes", "cannot name a checkpoint"),
])
def test_invalid_settings_are_shown_before_starting(numbers, name, message):
    at = open_page()
    set_numbers(at, **numbers)
    at.text_input(key="train_name").set_value(name).run()
    assert not at.exception
    assert any(message in e.value for e in at.error), [e.value for e in at.error]
    assert at.button(key="train_start").disabled


def test_a_taken_name_is_refused(make_checkpoint):
    make_checkpoint(checkpoint.USER_DIR / "page-taken")
    at = open_page()
    at.text_input(key="train_name").set_value("page-taken").run()
    assert any("'page-taken' exists already" in e.value for e in at.error)
    assert at.button(key="train_start").disabled


def test_a_bad_upload_names_the_line():
    at = open_page()
    at.selectbox(key="train_task").set_value("pairs").run()
    assert at.selectbox(key="train_architecture").value == "transformer"
    assert any("Upload a TSV file" in i.value for i in at.info) and at.button(key="train_start").disabled
    at.file_uploader(key="train_upload").upload("pairs.tsv", b"abc\tcba\nno tab here\n", "text/tab-separated-values")
    at.run()
    assert any("pairs.tsv: line 2 of the TSV file" in shown(e) for e in at.error), [e.value for e in at.error]

    at.selectbox(key="train_task").set_value("text").run()
    assert [option.split(":")[0] for option in at.selectbox(key="train_architecture").options] == ["lm"]
    at.file_uploader(key="train_upload").upload("notes.txt", b"fine\n\xff\n", "text/plain")
    at.run()
    assert any("line 2 of the text is not UTF-8" in shown(e) for e in at.error), [e.value for e in at.error]


def test_a_preset_fills_the_settings():
    at = open_page()
    label = next(l for l in preset_labels() if preset_name(l) == "reverse-lstm+bahdanau")
    at.selectbox(key="train_preset").set_value(label).run()
    assert at.selectbox(key="train_architecture").value == "lstm+bahdanau"
    preset = PRESETS["reverse-lstm+bahdanau"]
    assert at.number_input(key="train_hidden_size").value == {**RNN_SIZES, **preset.sizes}["hidden_size"]
    assert at.number_input(key="train_steps").value == preset.train["steps"]
    assert not at.error


def test_a_diverged_run_shows_the_hint(saved):
    from attnviz.data.tasks import make_task
    from attnviz.training.presets import build

    task = make_task("reverse", n_train=64, n_val=16, n_test=16)
    model, config = build(task, "transformer", {"d_model": 16, "n_heads": 2, "d_ff": 32},
                          {"steps": 20, "eval_every": 10, "snapshot_every": 10})
    training_steps = [0]

    def nan_from_step_3(module, inputs, output):  # what too high a learning rate ends in, made certain
        if module.training:
            training_steps[0] += 1
            return output * float("nan") if training_steps[0] >= 3 else output

    model.lm_head.register_forward_hook(nan_from_step_3)
    saved.append("page-nan")
    run = TrainingRun(model, task, config, name="page-nan", save=True, executor=ThreadExecutor()).start()  # the hook
    run.join(120)
    at = open_page(run="page-nan")
    assert {m.label: m.value for m in at.metric}["Status"] == "diverged"
    assert any("at step 3" in e.value and "Lower the learning rate" in e.value for e in at.error)
    assert not at.success and run.snapshot().saved_path == ""  # no green "Saved": kept only if the user asks
    at.button(key="train_save_anyway").click().run()
    assert run.snapshot().saved_path.endswith("page-nan")  # with the weights of step 2
    assert any("Saved anyway as page-nan" in t.value for t in at.text)
