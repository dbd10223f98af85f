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
from markdown_it import MarkdownIt
from page_helpers import shown_in
from streamlit.testing.v1 import AppTest

from attnviz import i18n
from attnviz.app.markdown import escape
from attnviz.app.train_view import preset_labels, preset_name, preset_settings
from attnviz.models.architectures import RNN_SIZES
from attnviz.training import checkpoint, checkpoint_folder
from attnviz.training.checkpoint_names import claim_name
from attnviz.training.plan import free_name
from attnviz.training.presets import PRESETS
from attnviz.training.executor import ThreadExecutor
from attnviz.training.owners import anonymous_label
from attnviz.training.runs import REGISTRY, TrainingRun, thin

APP = "../../app.py"
PAGE = "pages/train.py"
TINY = {"d_model": 16, "n_heads": 2, "d_ff": 32, "steps": 20, "eval_every": 10, "snapshot_every": 10,
        "time_budget": 0}


def open_page(owner=None, **query_params):
    """A new session of the page; `owner` gives it a browser's owner token (AppTest sends no cookies, so
    ui.browser_owner falls back to the session's "owner_token", which this sets): the same owner is the same
    browser after a reload. Without one, a browser of its own."""
    at = AppTest.from_file(APP, default_timeout=60)
    if owner:
        at.session_state["owner_token"] = owner
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
        shutil.rmtree(checkpoint_folder.USER_DIR / name, ignore_errors=True)


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
    assert any("Saved as page-tiny:" in text for text in shown_in(at.success))
    assert (checkpoint_folder.USER_DIR / "page-tiny" / "meta.json").exists()

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
        ("you", "reverse", "transformer", "done", "20/20")
    assert row["best"].startswith("exact match")

    picker = at.sidebar.selectbox(key="model")  # the saved model is in every page's picker at once
    assert any(option.startswith("page-tiny ") for option in picker.options)
    assert at.text_input(key="train_name").value == free_name("reverse-transformer")  # ready for the next run


def test_the_name_of_the_run_just_started_never_comes_back_as_the_next_name(saved, wait_for_run):
    """Start suggests the next name, but a rerun the browser asked for before it heard of it (the live part's, every
    second) sends the name box's old value: the name of the run just started, which is taken. The form suggests a
    free name again instead of refusing the name the user never typed (seen under load: Start stayed off)."""
    at = open_page()
    run = start_tiny(at, "page-started", saved)
    at.text_input(key="train_name").set_value("page-started").run()  # the browser's stale value
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.text_input(key="train_name").value == free_name("reverse-transformer")
    wait_for_run(run, timeout=120)


def test_an_older_suggestion_that_comes_back_taken_is_replaced_too(make_checkpoint):
    """The form suggested a name, another tab's run took it, and the form suggested the next one; a rerun the browser
    asked for before it heard of that one (the live part's, every second) sends the older suggestion back. It is the
    form's name, not the user's: the form suggests a free name again instead of refusing it (seen under load: Start
    stayed off for two minutes with "'reverse-transformer-15' exists already")."""
    at = open_page()
    first = at.text_input(key="train_name").value
    make_checkpoint(checkpoint_folder.USER_DIR / first)  # another tab's run took it
    second = at.run().text_input(key="train_name").value
    assert second != first
    at.text_input(key="train_name").set_value(first).run()  # the browser's stale value
    assert not at.exception and not at.error, shown_in(at.error)
    assert at.text_input(key="train_name").value == second == free_name("reverse-transformer")
    assert not at.button(key="train_start").disabled


def test_a_second_tab_and_a_reload_find_the_run_and_its_model(saved, wait_for_run):
    first = open_page(owner="ada-browser")
    run = start_tiny(first, "page-shared", saved)
    del first  # the tab is gone: its run goes on in the registry, finishes, and is saved
    wait_for_run(run, timeout=120)

    second = open_page()  # another browser tab: a session of its own
    assert any(option.startswith("page-shared ") for option in second.sidebar.selectbox(key="model").options)
    assert "page-shared" in list(table_with(second, "who")["model"])
    assert not any(text.startswith("Run ") for text in shown_in(second.subheader))  # it follows no run of its own

    reloaded = open_page(owner="ada-browser", run="page-shared")  # a reload keeps ?run= in the URL
    assert "Run page-shared" in shown_in(reloaded.subheader)
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
    assert any("Saved as page-stop:" in text for text in shown_in(at.success))


def test_a_queued_user_sees_their_place(saved, monkeypatch):
    monkeypatch.setattr(REGISTRY, "max_concurrent", 1)
    other = open_page()
    busy = start_tiny(other, "page-busy", saved, steps=20_000)
    at = open_page()
    start_tiny(at, "page-waiting", saved)
    assert {m.label: m.value for m in at.metric}["Status"] == "queued"
    assert any("number 1 in the queue" in i.value for i in at.info)
    busy.stop(other.session_state["owner_token"])


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
    assert any(message in text for text in shown_in(at.error)), shown_in(at.error)
    assert at.button(key="train_start").disabled


def test_a_taken_name_is_refused(make_checkpoint):
    make_checkpoint(checkpoint_folder.USER_DIR / "page-taken")
    at = open_page()
    at.text_input(key="train_name").set_value("page-taken").run()
    assert any("'page-taken' exists already" in text for text in shown_in(at.error))
    assert at.button(key="train_start").disabled


def test_a_bad_upload_names_the_line():
    at = open_page()
    at.selectbox(key="train_task").set_value("pairs").run()
    assert at.selectbox(key="train_architecture").value == "transformer"
    assert any("Upload a TSV file" in i.value for i in at.info) and at.button(key="train_start").disabled
    at.file_uploader(key="train_upload").upload("pairs.tsv", b"abc\tcba\nno tab here\n", "text/tab-separated-values")
    at.run()
    assert any("pairs.tsv: line 2 of the TSV file" in text for text in shown_in(at.error)), shown_in(at.error)

    at.selectbox(key="train_task").set_value("text").run()
    assert [option.split(":")[0] for option in at.selectbox(key="train_architecture").options] == ["lm"]
    at.file_uploader(key="train_upload").upload("notes.txt", b"fine\n\xff\n", "text/plain")
    at.run()
    assert any("line 2 of the text is not UTF-8" in text for text in shown_in(at.error)), shown_in(at.error)


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
    run = TrainingRun(model, task, config, name="page-nan", owner="ada-browser", save=True,
                      executor=ThreadExecutor()).start()  # in this process: the hook is this model's own
    run.join(120)
    assert "train_save_anyway" not in [b.key for b in open_page(run="page-nan").button]  # only Ada saves it
    at = open_page(owner="ada-browser", run="page-nan")
    assert {m.label: m.value for m in at.metric}["Status"] == "diverged"
    assert any("at step 3" in text and "Lower the learning rate" in text for text in shown_in(at.error))
    assert not at.success and run.snapshot().saved_path == ""  # no green "Saved": kept only if the user asks
    at.button(key="train_save_anyway").click().run()
    assert run.snapshot().saved_path.endswith("page-nan")  # with the weights of step 2
    assert any("Saved anyway as page-nan" in t.value for t in at.text)


# ---------------------------------------------------------------------------------------------- whose is what

def test_another_browser_watches_a_run_but_cannot_stop_it(saved, wait_for_run):
    ada = open_page(owner="ada-browser")
    ada.text_input(key="train_owner").set_value("Ada")
    run = start_tiny(ada, "page-watched", saved, steps=20_000)
    wait_for_run(run, lambda snap: snap.step >= 2, what="step 2")

    bob = open_page(owner="bob-browser", run="page-watched")  # a link Ada shared in class
    assert not bob.exception
    assert any(s.value == f"Run {escape('page-watched')} by Ada" for s in bob.subheader)
    assert {m.label: m.value for m in bob.metric}["Status"] == "training"
    assert "train_stop" not in [b.key for b in bob.button]
    assert not bob.button(key="train_start").disabled  # watching is not running one of your own
    row = table_with(bob, "who").set_index("model").loc["page-watched"]
    assert row["who"] == "Ada"
    step = run.snapshot().step
    wait_for_run(run, lambda snap: snap.step > step, what="a step after Bob looked")

    reloaded = open_page(owner="ada-browser", run="page-watched")  # Ada's reload: her browser, her run
    assert table_with(reloaded, "who").set_index("model").loc["page-watched", "who"] == "you"
    reloaded.button(key="train_stop").click().run()
    wait_for_run(run, timeout=120)
    assert run.snapshot().status == "stopped"


def test_every_tab_sees_the_curves_of_the_steps_so_far_in_its_own_language(saved, wait_for_run):
    """A run's figures are built once for all the tabs watching it; each tab still shows every step so far, and
    the figures' words in its own language."""
    ada = open_page(owner="ada-browser")
    run = start_tiny(ada, "page-curves", saved, steps=20_000, eval_every=10_000)  # no new validation meanwhile
    wait_for_run(run, lambda snap: snap.step >= 3, what="step 3")
    last_step = lambda: traces(ada.run(), "curve_loss")["training (moving average)"]["x"][-1]
    first = last_step()
    wait_for_run(run, lambda snap: snap.step > first + 5, what="five more steps")
    assert last_step() > first + 5  # the same tab, the same run, a newer figure
    run.stop("ada-browser", timeout=60)
    wait_for_run(run, timeout=120)
    steps = run.snapshot().history["step"]
    shown_steps = [steps[i] for i in thin(list(range(len(steps))), 400)]  # the page thins long histories
    zh = i18n.translations("zh").gettext
    for at, title, series in ((ada.run(), "Loss", "training (moving average)"),  # Bob's tab opens after Ada's run
                              (open_page(owner="bob-browser", run="page-curves", lang="zh"), zh("Loss"),
                               zh("training (moving average)"))):
        assert not at.exception
        assert chart(at, "curve_loss")["layout"]["title"]["text"] == title
        assert list(traces(at, "curve_loss")[series]["x"]) == shown_steps


def test_an_anonymous_run_shows_a_label_never_the_token(saved):
    at = open_page(owner="0123456789abcdef0123456789abcdef")
    run = start_tiny(at, "page-anonymous", saved, steps=20_000)
    other = open_page(owner="bob-browser")
    who = table_with(other, "who").set_index("model").loc["page-anonymous", "who"]
    assert who == anonymous_label("0123456789abcdef0123456789abcdef") and "0123456789" not in who
    run.stop("0123456789abcdef0123456789abcdef", timeout=60)


@pytest.fixture
def two_students_models():
    """'page-adas' trained by Ada's browser and 'page-bobs' by Bob's (named Bob), in the user folder."""
    from attnviz import TransformerConfig, build_model
    from attnviz.data.tokenizers import CharTokenizer

    tokenizer = CharTokenizer("abc")
    config = TransformerConfig(tokenizer.vocab_size, tokenizer.vocab_size, d_model=8, n_heads=2, d_ff=16)
    for name, owner, who in (("page-adas", "ada-browser", "Ada"), ("page-bobs", "bob-browser", "Bob")):
        checkpoint.save_checkpoint(name, build_model(config), tokenizer,
                                   {"task": {"name": "reverse"}, "owner": owner, "trained_by": who})
    yield
    for name in ("page-adas", "page-bobs"):
        shutil.rmtree(checkpoint_folder.USER_DIR / name, ignore_errors=True)


def test_the_picker_and_home_say_yours_only_for_your_models(two_students_models):
    at = open_page(owner="ada-browser")
    options = at.sidebar.selectbox(key="model").options
    assert "page-adas (reverse, yours)" in options and "page-bobs (reverse, by Bob)" in options
    assert "reverse-transformer (reverse)" in options  # shipped
    home = AppTest.from_file(APP, default_timeout=60)
    home.session_state["owner_token"] = "bob-browser"
    home.run()
    models = next(d.value for d in home.dataframe if "from" in d.value.columns).set_index("model")["from"]
    assert (models["page-adas"], models["page-bobs"], models["reverse-transformer"]) == ("by Ada", "yours", "shipped")


def test_you_delete_your_own_models_and_only_yours(two_students_models):
    at = open_page(owner="ada-browser")
    assert at.selectbox(key="train_delete_choice").options == ["page-adas"]  # not Bob's, not the shipped ones
    at.button(key="train_delete").click().run()
    assert not at.exception
    assert any(escape("page-adas") in s.value and "Deleted" in s.value for s in at.success)
    users = checkpoint_folder.USER_DIR
    assert not (users / "page-adas").exists() and (users / "page-bobs").is_dir()
    assert not any(o.startswith("page-adas ") for o in at.sidebar.selectbox(key="model").options)
    assert "train_delete" not in [b.key for b in at.button]  # nothing of Ada's left to delete


def test_a_name_another_process_holds_is_refused_at_start(saved):
    at = open_page()
    set_numbers(at, **TINY)
    at.text_input(key="train_name").set_value("page-held").run()
    with claim_name("page-held"):  # say, the command line training under this name right now
        at.button(key="train_start").click().run()
    assert REGISTRY.find("page-held") is None
    assert any("is taken: a model is being trained or saved under it right now" in e.value.replace("\\", "")
               for e in at.error), [e.value for e in at.error]


# ------------------------------------------------------------------------------------------ the form refuses, never clamps


def column_of(at, key):
    """The column that holds the widget with this key: what the page shows next to the field."""
    return next(c for c in at.columns if any(w.key == key for w in c.number_input))


def refusals_beside(at, key):
    return shown_in(column_of(at, f"train_{key}").error)


@pytest.mark.parametrize("key, value, label", [
    ("n_encoder_layers", 0, "encoder layers"), ("n_decoder_layers", 0, "decoder layers"), ("steps", 0, "steps"),
    ("batch_size", 0, "batch size"), ("lr", 0.0, "learning rate"), ("lr", -0.001, "learning rate"),
    ("d_model", 0, "d_model"), ("eval_every", 0, "validate every (steps)"),
])
def test_a_value_out_of_range_is_refused_at_its_field_and_blocks_start(key, value, label):
    at = open_page()
    good = at.number_input(key=f"train_{key}").value
    set_numbers(at, **{key: value}).run()
    assert not at.exception
    assert at.number_input(key=f"train_{key}").value == value  # kept as typed, not replaced by a bound
    assert any(text.startswith(f"{key}={value!r} is not possible") for text in refusals_beside(at, key)), \
        shown_in(at.error)
    start = at.button(key="train_start")
    assert start.disabled and label in start.help
    assert any(f"until {label} holds a possible value" in text for text in shown_in(at.caption))
    set_numbers(at, **{key: good}).run()
    assert not at.error and not at.button(key="train_start").disabled


def test_an_over_size_model_blocks_start_and_names_its_fields():
    at = open_page()
    set_numbers(at, d_model=512, d_ff=2048, n_encoder_layers=40).run()
    assert any("the limit here is" in text and "n_encoder_layers=40" in text for text in shown_in(at.error))
    assert at.button(key="train_start").disabled
    set_numbers(at, d_model=64, d_ff=128, n_encoder_layers=1).run()
    assert not at.error and not at.button(key="train_start").disabled


def test_a_diverging_run_started_from_the_form_is_diverged_and_not_saved(saved):
    at = open_page()
    run = start_tiny(at, "page-diverge", saved, lr=1.0, warmup=0)  # seed 0: the loss ends above its first loss
    run.join(120)  # wait_for_run fails on a diverged run: here that is the point
    assert run.done
    at.run()
    snap = run.snapshot()
    assert snap.history["loss"][-1] > snap.history["loss"][0]  # it did diverge (an independent look at the run)
    assert {m.label: m.value for m in at.metric}["Status"] == "diverged"
    assert any("lower the learning rate (it was 1)" in text for text in shown_in(at.error))
    assert not at.success and not (checkpoint_folder.USER_DIR / "page-diverge").exists()
    assert at.button(key="train_save_anyway")  # kept only if the user asks


# ------------------------------------------------------------------------------------------ a configuration is a link


def form(at):
    """Every setting the form shows: the preset, task and architecture boxes and each number."""
    boxes = {key: at.selectbox(key=f"train_{key}").value for key in ("preset", "task", "architecture")}
    return boxes | {n.key.removeprefix("train_"): n.value for n in at.number_input if n.key.startswith("train_")}


def link(at):
    return {key: at.query_params[key] for key in at.query_params if key not in ("model", "run")}


def test_a_shared_link_fills_a_fresh_form_exactly():
    at = open_page()
    dates = next(l for l in preset_labels() if preset_name(l) == "dates-transformer")
    at.selectbox(key="train_preset").set_value(dates).run()
    at.selectbox(key="train_architecture").set_value("lstm+bahdanau").run()
    set_numbers(at, hidden_size=48, n_layers=2, steps=123, lr=0.0025, clip=2.5, snapshot_every=7).run()
    assert at.query_params["steps"] == "123" and at.query_params["lr"] == "0.0025"  # a change updates the URL
    shared = form(at)
    assert shared["architecture"] == "lstm+bahdanau" and shared["hidden_size"] == 48

    fresh = open_page(**link(at))  # another student's browser, opening the teacher's link
    assert not fresh.exception and not fresh.warning
    assert form(fresh) == shared
    assert link(fresh) == link(at)


def test_a_link_that_sets_a_few_settings_takes_the_rest_from_its_preset():
    label = next(l for l in preset_labels() if preset_name(l) == "copy-transformer")
    at = open_page(preset=label, steps="40", n_heads="2")
    expected = {k: v for k, v in preset_settings(label).items() if k in form(at)} | {"steps": 40, "n_heads": 2}
    assert form(at) == {"preset": label, **expected}


@pytest.mark.parametrize("params, field, fallback", [
    ({"steps": "many"}, "steps", 350), ({"batch_size": "1.5"}, "batch_size", 64), ({"lr": "nan"}, "lr", 0.007),
    ({"d_model": "1e400"}, "d_model", 64),
])
def test_a_link_value_that_is_no_number_falls_back_with_a_note(params, field, fallback):
    at = open_page(**params)  # the first preset: reverse letters, 350 steps, lr 0.007
    assert not at.exception
    assert at.number_input(key=f"train_{field}").value == fallback
    notes = shown_in(column_of(at, f"train_{field}").warning)
    assert notes == [f"The link's {field} {params[field]} is not a {'' if field == 'lr' else 'whole '}number: "
                     f"{fallback} instead."]
    assert not at.button(key="train_start").disabled


def test_a_link_value_out_of_range_is_shown_and_refused_at_its_field():
    at = open_page(n_encoder_layers="0")
    assert at.number_input(key="train_n_encoder_layers").value == 0
    assert any(text.startswith("n_encoder_layers=0 is not possible") for text in refusals_beside(at, "n_encoder_layers"))
    assert at.button(key="train_start").disabled


def test_an_unknown_task_or_architecture_in_a_link_falls_back_with_a_note():
    at = open_page(task="nonsense", architecture="lm")  # lm does not fit reverse
    assert not at.exception
    assert (at.selectbox(key="train_task").value, at.selectbox(key="train_architecture").value) == \
        ("reverse", "transformer")
    notes = shown_in(at.warning)
    assert "The link asks for task nonsense, which is not one of the choices here: reverse instead." in notes
    assert "The link asks for architecture lm, which is not one of the choices here: transformer instead." in notes


HOSTILE = "![x](http://127.0.0.1:9/a.png) <img src=x onerror=alert(1)> **bold**"


def test_user_text_on_the_page_is_shown_as_text():
    at = open_page(task=HOSTILE, steps=HOSTILE, run=HOSTILE)
    assert not at.exception
    for element in [*at.warning, *at.info, *at.error]:
        rendered = MarkdownIt("commonmark", {"html": True}).render(element.value)
        assert "<img" not in rendered and "<strong>" not in rendered, element.value
    assert any(HOSTILE in text for text in shown_in(at.info))  # the ?run= name, as typed
    assert sum(HOSTILE in text for text in shown_in(at.warning)) == 2  # the task and the steps

    at.selectbox(key="train_task").set_value("pairs").run()
    at.file_uploader(key="train_upload").upload(f"{HOSTILE}.tsv", b"abc\tcba\nno tab\n", "text/tab-separated-values")
    at.run()
    assert any(text.startswith(f"{HOSTILE}.tsv: line 2") for text in shown_in(at.error)), shown_in(at.error)


def test_the_preset_and_the_suggested_name_follow_the_task():
    at = open_page()
    at.selectbox(key="train_task").set_value("dates").run()
    dates = next(l for l in preset_labels() if preset_name(l) == "dates-transformer")  # its first preset
    assert at.selectbox(key="train_preset").value == dates and at.query_params["preset"] == dates
    assert at.number_input(key="train_steps").value == PRESETS["dates-transformer"].train["steps"]
    assert at.text_input(key="train_name").value == free_name("dates-transformer")
    at.selectbox(key="train_architecture").set_value("lstm").run()
    assert at.text_input(key="train_name").value == free_name("dates-lstm")

    at.selectbox(key="train_task").set_value("text").run()  # no preset trains your own text: a language model's
    assert at.selectbox(key="train_architecture").value == "lm"
    assert PRESETS[preset_name(at.selectbox(key="train_preset").value)].architecture == "lm"
    assert at.text_input(key="train_name").value == free_name("text-lm")

    at.text_input(key="train_name").set_value("my-own").run()
    at.selectbox(key="train_task").set_value("copy").run()
    assert at.text_input(key="train_name").value == "my-own"  # a typed name is the user's
