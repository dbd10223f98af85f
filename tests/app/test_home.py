"""The landing page and the sidebar every page shares (device badge, model picker), through AppTest."""
from pathlib import Path

import torch
from page_helpers import english_left, english_phrases, shown
from streamlit.testing.v1 import AppTest

from attnviz.training.checkpoint_list import CheckpointInfo, list_checkpoints
from attnviz.training.device import describe, pick_device

APP = "../../app.py"


def run_app(owner=None, **query_params):
    """A new session of Home; `owner` is its browser's owner token (AppTest sends no cookies: ui.browser_owner
    then takes the session's "owner_token")."""
    at = AppTest.from_file(APP, default_timeout=60)
    if owner:
        at.session_state["owner_token"] = owner
    at.query_params.update(query_params)
    return at.run()


def test_landing_page_shows_title_and_device(model_dirs):
    at = run_app()
    assert not at.exception
    assert at.title[0].value == "attnviz"
    device = describe(pick_device("auto"))
    assert any(device in m.value for m in at.markdown)  # the page's device section
    assert any(device in c.value for c in at.sidebar.caption)  # the sidebar badge


def test_without_models_the_page_says_how_to_make_one(model_dirs):
    at = run_app()
    assert not at.exception
    assert not at.dataframe
    assert [s.key for s in at.sidebar.selectbox] == ["language"]  # no model picker, only the language
    assert any("python -m attnviz train" in i.value for i in at.info)


def test_without_models_home_and_the_attention_pages_say_so_in_chinese(model_dirs):
    at = run_app(lang="zh")
    assert not at.exception
    assert english_left(at) == []
    assert any("还没有训练好的模型" in i.value and "python -m attnviz train" in i.value for i in at.info)
    at.switch_page("pages/explorer.py").run()
    assert not at.exception
    note = at.main.info[0].value  # ui.model_or_stop's
    assert "还没有可查看的模型" in note and "python -m attnviz train" in note and english_phrases(note) == []


def test_models_are_listed_and_picked(model_dirs, make_checkpoint):
    user, shipped = model_dirs
    make_checkpoint(shipped / "reverse")
    make_checkpoint(user / "my-dates", task="dates", owner="my-browser", trained_by="Ada")
    at = run_app(owner="my-browser")
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["model"]) == ["reverse", "my-dates"]
    assert list(table["from"]) == ["shipped", "yours"]
    assert list(run_app(owner="another-browser").dataframe[0].value["from"]) == ["shipped", "by Ada"]
    assert list(table["task"]) == ["reverse", "dates"]
    assert list(table["test result"]) == ["exact match 50.0%"] * 2
    assert list(table["size"]) == ["d_model 8, 2 heads, 1 encoder + 1 decoder layers"] * 2
    picker = at.sidebar.selectbox(key="model")
    assert picker.options == ["reverse (reverse)", "my-dates (dates, yours)"]
    assert picker.value == "reverse" and at.query_params["model"] == "reverse"

    picker.set_value("my-dates").run()
    assert at.session_state["model"] == "my-dates" and at.query_params["model"] == "my-dates"


def test_model_comes_back_from_a_shared_link(model_dirs, make_checkpoint):
    shipped = model_dirs.shipped
    make_checkpoint(shipped / "reverse")
    make_checkpoint(shipped / "dates", task="dates")
    assert run_app(model="reverse").sidebar.selectbox(key="model").value == "reverse"
    assert run_app(model="no-such-model").sidebar.selectbox(key="model").value == "dates"  # the first one


def test_a_link_to_a_model_not_here_says_so_until_one_is_picked(model_dirs, make_checkpoint):
    shipped = model_dirs.shipped
    make_checkpoint(shipped / "reverse")
    make_checkpoint(shipped / "dates", task="dates")
    assert not run_app(model="reverse").sidebar.warning  # a link to a model that is here says nothing
    wanted = "*gone*<b>x</b>"  # the link's text, shown as text
    at = run_app(model=wanted)
    assert not at.exception
    [warning] = at.sidebar.warning
    assert shown(warning) == f"The model {wanted} is not on this server: showing dates."
    at.run()  # any click: still said
    assert len(at.sidebar.warning) == 1
    at.sidebar.selectbox(key="model").set_value("reverse").run()
    assert not at.sidebar.warning and at.query_params["model"] == "reverse"


def test_unreadable_checkpoint_is_named_not_fatal(model_dirs, make_checkpoint):
    shipped = model_dirs.shipped
    make_checkpoint(shipped / "reverse")
    (shipped / "broken").mkdir()
    at = run_app()
    assert not at.exception
    assert list(at.dataframe[0].value["model"]) == ["reverse"]
    assert any("broken" in shown(w) and "meta.json" in shown(w) for w in at.warning)


def test_picked_model_is_loaded_and_reloaded_when_saved_again(model_dirs, make_checkpoint):
    from attnviz.app import ui

    def same_weights(a, b):
        return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))

    shipped = model_dirs.shipped
    first = make_checkpoint(shipped / "reverse")
    assert same_weights(ui.load_model(list_checkpoints()[0]).model, first)
    second = make_checkpoint(shipped / "reverse")  # new random weights under the same name
    assert not same_weights(first, second)
    assert same_weights(ui.load_model(list_checkpoints()[0]).model, second)


def test_pages_get_the_picked_model(model_dirs, make_checkpoint):
    def page():
        import streamlit as st

        from attnviz.app import ui
        ui.model_picker()
        model = ui.selected_model()
        st.write(f"{model.name}: {model.meta['task']['name']}" if model else "none")

    shipped = model_dirs.shipped
    at = AppTest.from_function(page, default_timeout=60).run()
    assert at.markdown[0].value == "none"
    make_checkpoint(shipped / "reverse")
    make_checkpoint(shipped / "dates", task="dates")
    at.run()
    assert at.markdown[0].value == "dates: dates"
    at.sidebar.selectbox(key="model").set_value("reverse").run()
    assert at.markdown[0].value == "reverse: reverse"


def test_first_visit_starts_on_a_shipped_transformer():
    from attnviz.app import ui
    infos = [CheckpointInfo("a-lstm", Path("a"), True, {"architecture": "rnn"}),
             CheckpointInfo("b-mine", Path("b"), False, {"architecture": "transformer"}),
             CheckpointInfo("c-shipped", Path("c"), True, {"architecture": "transformer"})]
    assert ui.default_model(infos) == "c-shipped"
    assert ui.default_model(infos[:2]) == "b-mine"
    assert ui.default_model(infos[:1]) == "a-lstm"
