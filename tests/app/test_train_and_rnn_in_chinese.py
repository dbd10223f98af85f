"""Train live and RNN vs attention in Chinese (?lang=zh): the form (several tasks and architectures, a refused
setting), a tiny run going and finished, and the comparison of the three models with every section drawn show no
English phrase that these pages write themselves; a message made in a button's callback is Chinese too.

The text other modules build (field labels, task and preset descriptions, the run's numbers and tables, figure axes,
the library's messages) is translated by those modules and checked by their own tests: a phrase found in their string
literals is not counted here. (A few phrases are in both, such as "Bahdanau et al": the catalog test makes sure the
pages' own have a translation.)"""
import ast
import functools
import shutil
import types
from dataclasses import replace
from pathlib import Path

import pytest
import test_rnn_page
import test_train_page
from page_helpers import ENGLISH_PHRASE, NOT_PROSE, charts, english_left
from test_rnn_page import tiny
from test_train_page import set_numbers, start_tiny

from attnviz import build_model, i18n
from attnviz.interpret import contenders
from attnviz.interpret.contenders import checkpoint_name, runs_of
from attnviz.training import checkpoint, checkpoint_folder, checkpoint_names
from attnviz.training.runs import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
# AppTest formats a widget's options again in the test's own thread (format_func=_ translates there), so the test
# thread reads Chinese too, as the sessions do.
pytestmark = pytest.mark.usefixtures("chinese")
saved = test_train_page.saved  # the names of the runs a test starts, deleted afterwards
shipped_dir, dirs, tiny_presets = test_rnn_page.shipped_dir, test_rnn_page.dirs, test_rnn_page.tiny_presets


@functools.cache
def phrases_in(path):
    """The English phrases of every string literal in a file or a package, docstrings left out."""
    files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
    phrases = set()
    for file in files:
        tree = ast.parse(file.read_text(encoding="utf-8"))
        docstrings = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                phrases |= set(ENGLISH_PHRASE.findall(NOT_PROSE.sub(" ", node.value)))
    return phrases


def english_of_the_page(at, allowed=()):
    """The English phrases left in the main area of a page run that do not come from other modules (attnviz/): the
    page's own."""
    theirs = phrases_in(ROOT / "attnviz")
    main_area = types.SimpleNamespace(main=at.main, sidebar=())
    return sorted(set(english_left(main_area, allowed)) - theirs)


# ---------------------------------------------------------------------------------------------------- Train live

def open_train(owner=None, **query_params):
    return test_train_page.open_page(owner, lang="zh", **query_params)


def test_the_form_is_chinese_for_every_kind_of_task():
    at = open_train()
    assert not at.exception
    assert at.title[0].value == "实时训练" and at.button(key="train_start").label == "开始训练"
    assert at.expander[0].label == "设置一次训练" and at.selectbox(key="train_preset").label == "预设"
    assert english_of_the_page(at) == []
    for task, architecture in (("dates", "lstm+bahdanau"), ("induction", "lm"), ("pairs", "transformer"),
                               ("text", "lm")):
        at.selectbox(key="train_task").set_value(task).run()
        at.selectbox(key="train_architecture").set_value(architecture).run()
        assert not at.exception
        assert english_of_the_page(at) == [], (task, architecture)
    assert any(info.value.startswith("上传一个") for info in at.info)  # your own text: upload it first


@pytest.mark.parametrize("key, value, where", [("n_heads", 3, ""), ("eval_every", 0, "（在“更多设置”中）")])
def test_a_refused_setting_says_in_chinese_why_start_is_off(key, value, where):
    at = open_train()
    set_numbers(at, **{key: value}).run()
    start = at.button(key="train_start")
    assert start.disabled and start.help.startswith("在 ") and start.help.endswith(f"请看它下方的提示{where}。")
    assert any(caption.value.endswith(f"请看它下方的提示{where}。") for caption in at.caption)
    refusals = [error.value for error in at.error]  # the library's own message, built from several literals
    assert refusals and english_of_the_page(at, allowed=refusals) == []


def model_text(run):
    """What a run's model reads and writes (its probes and outputs), where it has words that could pass for English:
    a single letter would be cut out of every text."""
    snap = run.snapshot()
    texts = [text for probe in run.task.probes for text in probe] + \
        [output for s in snap.snapshots for output in s.get("outputs", [])]
    return [text for text in texts if ENGLISH_PHRASE.search(text)]


def run_numbers(at):
    """The labels of a run's numbers: run_metrics (train_view) builds them ("Best exact match")."""
    return [metric.label for metric in at.metric]


def test_a_run_going_and_finished_is_chinese(saved, wait_for_run):
    at = open_train(owner="zh-browser")
    at.text_input(key="train_owner").set_value("Ada")
    run = start_tiny(at, "page-zh-going", saved, steps=20_000, snapshot_every=1)
    wait_for_run(run, lambda snap: len(snap.snapshots) >= 2, what="two snapshots")
    at.run()
    assert not at.exception
    assert "训练运行 page\\-zh\\-going" in [s.value for s in at.subheader]
    assert at.button(key="train_stop").label == "停止"
    assert any(caption.value.startswith("你的训练正在进行") for caption in at.caption)
    assert english_of_the_page(at, allowed=model_text(run) + run_numbers(at)) == []
    watcher = open_train(owner="bob-browser", run="page-zh-going")  # another browser follows the link
    assert "训练运行 page\\-zh\\-going（Ada 训练）" in [s.value for s in watcher.subheader]
    assert english_of_the_page(watcher, allowed=model_text(run) + run_numbers(watcher)) == []
    at.button(key="train_stop").click().run()
    wait_for_run(run, timeout=120)

    done = start_tiny(at, "page-zh-done", saved)
    wait_for_run(done, timeout=120)
    at.run()
    assert not at.exception
    assert [s["step"] for s in done.snapshot().snapshots] == [1, 10, 20]
    assert charts(at)["lapse_heatmap"]["layout"]["title"]["text"].startswith("第 20 步：")  # the newest snapshot
    assert english_of_the_page(at, allowed=model_text(run) + model_text(done) + run_numbers(at)) == []


def test_deleting_your_model_is_chinese(make_checkpoint):
    make_checkpoint(checkpoint_folder.USER_DIR / "page-zh-mine", owner="zh-owner")
    at = open_train(owner="zh-owner")
    assert at.selectbox(key="train_delete_choice").label == "在此浏览器中训练的模型"
    at.button(key="train_delete").click().run()
    assert any(success.value.startswith("已删除 ") for success in at.success)
    assert english_of_the_page(at) == []


def test_a_message_made_in_a_callback_is_in_the_session_language(make_checkpoint, monkeypatch):
    """A button's callback runs before the page (in a thread of its own, which starts in English): the library's
    refusal it catches is still worded in the session's language."""
    def refuse(name, owner):
        raise ValueError(i18n._("Home"))  # any message of the catalog, as the library words one

    make_checkpoint(checkpoint_folder.USER_DIR / "page-zh-refused", owner="zh-owner")
    monkeypatch.setattr(checkpoint_names, "delete_checkpoint", refuse)
    at = open_train(owner="zh-owner")
    at.button(key="train_delete").click().run()
    assert [error.value for error in at.error] == ["首页"]


# ---------------------------------------------------------------------------------------------- RNN vs attention

def open_rnn(owner=None, **query_params):
    return test_rnn_page.open_page(owner, lang="zh", **query_params)


def english_of_the_comparison(at):
    """`english_of_the_page` but for the models' outputs on the same input (marked_html draws one <span> per
    character) and the library's messages (a letter the models do not know)."""
    outputs = [m.value.split("**: ", 1)[1] for m in at.markdown if m.value.startswith("**") and "<code>" in m.value]
    return english_of_the_page(at, allowed=outputs + [error.value for error in at.error])


def test_the_comparison_is_chinese_in_every_section(dirs):
    shipped, _ = dirs
    at = open_rnn()
    assert at.title[0].value == "RNN 与注意力"
    assert [h.value for h in at.header][:2] == ["并排比较训练过程", "同一个输入经过每个模型"]
    assert "验证集完全匹配率" in at.dataframe[0].value.columns  # the table's heads, not summary()'s keys
    assert english_of_the_comparison(at) == []
    for key, value in (("rnn_curve_x", "time"), ("rnn_reach_scale", "relative"),
                       ("rnn_gates_model", contenders.LABELS["lstm"])):
        at.radio(key=key).set_value(value).run()
        assert not at.exception and english_of_the_comparison(at) == [], key
    at.text_input(key="rnn_input_reverse").set_value("abz").run()  # "z" is not in the task's alphabet
    assert not at.exception and at.error and english_of_the_comparison(at) == []

    task, model, _config = tiny("reverse-long", "lstm")  # a plain tanh RNN joins the gradients where one ships
    plain = build_model(replace(model.config, cell="rnn")).eval()
    checkpoint.save_checkpoint(shipped / checkpoint_name("reverse-long", "rnn"), plain, task.tokenizer,
                               {"task": task.spec()})
    try:
        at = open_rnn(rnn_task="reverse-long")
        assert any("tanh RNN" in m.value and "衰减" in m.value for m in at.markdown)
        assert english_of_the_comparison(at) == []
    finally:
        shutil.rmtree(shipped / checkpoint_name("reverse-long", "rnn"))


def test_missing_models_and_training_all_three_are_chinese(dirs, tiny_presets, monkeypatch, wait_for_run):
    monkeypatch.setattr(checkpoint_folder, "SHIPPED_DIR", dirs[1])  # nothing shipped: the page says how to get them
    at = open_rnn()
    assert any("**在这里训练全部三个**" in info.value for info in at.info)
    assert english_of_the_comparison(at) == []

    tiny_presets["n"] = 100_000
    monkeypatch.setattr(REGISTRY, "max_concurrent", 1)  # the Transformer trains, the LSTMs wait in the queue
    at = open_rnn(owner="zh-tab", rnn_source="here")
    assert at.button(key="rnn_train").label == "训练全部三个"
    at.button(key="rnn_train").click().run()
    runs = runs_of("reverse", "zh-tab")
    wait_for_run(runs["transformer"], lambda snap: snap.step >= 2, what="step 2")
    at.run()
    assert not at.exception
    bars = [bar.proto.text for bar in at.get("progress")]
    assert len(bars) == 3 and all("步" in text for text in bars)
    assert english_of_the_comparison(at) == []
    at.button(key="rnn_stop").click().run()
    for run in runs.values():
        run.join(60)
    at.run()
    assert not at.exception and english_of_the_comparison(at) == []

