"""The positional-encoding lab through AppTest: the sinusoidal table against the formula, the shift matrix's
error, the model's own table, and the remove/shuffle experiment against a recomputation; in English and in Chinese."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from page_helpers import array, charts, english_left, shown, z_of
from page_helpers import open_page as open_any_page

from attnviz.interpret.positional import positional_ablation_summary, shift_check
from attnviz.training import checkpoint, checkpoint_folder

PAGE = "pages/positional.py"


def open_page(**query_params):
    return open_any_page(PAGE, **query_params)


def formula(T, D):
    """PE[pos, 2i] = sin(pos / 10000^(2i/D)), PE[pos, 2i+1] = cos(...), written out in numpy."""
    pos, i = np.arange(T)[:, None], np.arange(D)[None, :]
    angle = pos / 10000 ** ((i - i % 2) / D)
    return np.where(i % 2 == 0, np.sin(angle), np.cos(angle))



def removed_positions(name):
    """The test set run again without the positional encodings, computed here (not read off the page)."""
    picked = checkpoint.load_checkpoint(checkpoint_folder.USER_DIR / name)
    with torch.no_grad():
        return positional_ablation_summary(picked.model, picked.task().batches("test", 256), "remove")

def test_sinusoidal_table_follows_the_sliders(page_models):
    at = open_page(model="test-reverse")
    assert not at.exception
    assert np.allclose(z_of(charts(at)["pe_table"]), formula(64, 64), atol=1e-5)
    at.slider(key="pe_d_model").set_value(16).run()
    at.slider(key="pe_length").set_value(20).run()
    figures = charts(at)
    assert np.allclose(z_of(figures["pe_table"]), formula(20, 16), atol=1e-5)
    similarity = z_of(figures["pe_similarity"])
    assert np.allclose(similarity, formula(20, 16) @ formula(20, 16).T, atol=1e-4)
    curves = figures["pe_curves"]["data"]
    assert [trace["name"] for trace in curves][:2] == ["dim 0", "dim 1"]
    assert np.allclose(array(curves[0]["y"]), formula(20, 16)[:, 0], atol=1e-5)


def test_shift_matrix_and_its_error(page_models):
    at = open_page(model="test-reverse")
    at.slider(key="pe_d_model").set_value(8).run()
    at.slider(key="pe_k").set_value(5).run()
    assert not at.exception
    matrix = z_of(charts(at)["pe_shift"])
    table = formula(64, 8)
    assert matrix.shape == (8, 8)
    assert np.allclose(table[:-5] @ matrix.T, table[5:], atol=1e-5)  # PE(pos + 5) = M_5 PE(pos)
    error = next(m for m in at.metric if m.label.startswith("max |PE(pos + 5)"))
    assert float(error.value) < 1e-5


def test_model_encodings_are_its_own_table(page_models):
    at = open_page(model="test-reverse")
    assert not at.exception
    assert at.radio(key="pe_module").options == ["encoder.embed.positional (sinusoidal)",
                                                 "decoder.embed.positional (sinusoidal)"]
    rows = at.slider(key="pe_model_rows").value
    assert np.allclose(z_of(charts(at)["model_table"]), formula(rows, 32), atol=1e-5)


def test_experiment_measures_the_accuracy_drop(page_models):
    at = open_page(model="test-reverse")
    assert not at.metric or all("Token accuracy" not in m.label for m in at.metric)
    at.toggle(key="pe_experiment").set_value(True).run()
    assert not at.exception
    removed = removed_positions("test-reverse")
    shown = {m.label: m for m in at.metric}
    assert shown["Token accuracy, as trained"].value == f"{removed['accuracy_before']:.1%}"
    assert shown["Positions removed"].value == f"{removed['accuracy_after']:.1%}"
    assert "Positions shuffled" in shown
    assert removed["accuracy_change"] < 0  # reversing needs to know where each letter is


def test_models_without_positional_encoding_say_so(page_models):
    at = open_page(model="test-rnn")
    assert not at.exception
    assert "pe_table" in charts(at)  # the sinusoidal lab works for any model
    assert any("no positional encoding" in i.value and "recurrent" in i.value for i in at.info)


def test_language_model_has_one_table(page_models):
    at = open_page(model="test-lm")
    assert not at.exception
    assert z_of(charts(at)["model_table"]).shape[1] == 16
    assert not at.get("radio") or all(r.key != "pe_module" for r in at.radio)


@pytest.fixture
def learned(page_models):
    """An untrained Transformer with learned positional tables, saved as "test-learned" for the test."""
    import shutil

    from attnviz import TransformerConfig, build_model

    task = checkpoint.load_checkpoint(checkpoint_folder.USER_DIR / "test-reverse").task()
    vocab = task.tokenizer.vocab_size
    model = build_model(TransformerConfig(vocab, vocab, d_model=8, n_heads=2, d_ff=16, max_len=20, positional="learned"))
    path = checkpoint.save_checkpoint(checkpoint_folder.USER_DIR / "test-learned", model, task.tokenizer,
                                      {"task": task.spec()})
    yield model
    shutil.rmtree(path, ignore_errors=True)


def test_learned_table_is_compared_by_cosine_and_has_no_exact_shift(learned):
    at = open_page(model="test-learned")
    assert not at.exception
    rows = at.slider(key="pe_model_rows").value
    table = learned.encoder.embed.positional.table.detach()[:rows]
    figures = charts(at)
    assert np.allclose(z_of(figures["model_table"]), table.numpy(), atol=1e-6)
    cosine = torch.nn.functional.normalize(table, dim=-1)
    assert np.allclose(z_of(figures["model_similarity"]), (cosine @ cosine.T).numpy(), atol=1e-5)
    shift = next(m for m in at.metric if m.label.startswith("max |PE(pos + 3)") and float(m.value) > 1e-3)
    assert float(shift.value) == pytest.approx(shift_check(table, 3)[1], rel=0.05)


def test_a_shared_link_restores_the_sliders(page_models):
    at = open_page(model="test-reverse", d_model="16", positions="20", pe_k="5", rows="6")
    assert not at.exception
    assert (at.slider(key="pe_d_model").value, at.slider(key="pe_length").value, at.slider(key="pe_k").value,
            at.slider(key="pe_model_rows").value) == (16, 20, 5, 6)
    figures = charts(at)
    assert np.allclose(z_of(figures["pe_table"]), formula(20, 16), atol=1e-5)
    assert figures["pe_shift"]["layout"]["title"]["text"] == "M_5"
    assert z_of(figures["model_table"]).shape[0] == 6
    at.slider(key="pe_length").set_value(30).run()
    assert at.query_params["positions"] in ("30", ["30"]) and at.query_params["d_model"] in ("16", ["16"])
    at = open_page(model="test-reverse", d_model="<b>", positions="100000")  # typed by hand: default, clamped
    assert not at.exception
    assert (at.slider(key="pe_d_model").value, at.slider(key="pe_length").value) == (64, 256)


def english_on_main(at):
    """The English phrases left in the page's main area (the sidebar is the ui package's): the page shows no model
    output or user input, so every phrase counts."""
    return english_left(SimpleNamespace(main=at.main, sidebar=()))


def test_the_lab_in_chinese_with_the_experiment(page_models, chinese):
    at = open_page(model="test-reverse", lang="zh")
    at.slider(key="pe_k").set_value(5).run()
    at.toggle(key="pe_experiment").set_value(True).run()
    assert not at.exception
    assert english_on_main(at) == []
    assert at.title[0].value == "位置编码"
    assert [header.value for header in at.header] == ["正弦位置表", "模型自己的位置编码"]
    assert at.radio(key="pe_module").options == ["encoder.embed.positional (正弦)", "decoder.embed.positional (正弦)"]
    figures = charts(at)
    assert figures["pe_table"]["layout"]["title"]["text"] == "64 个位置 × 64 个维度"
    assert [trace["name"] for trace in figures["pe_curves"]["data"]][:2] == ["维度 0", "维度 1"]
    assert figures["pe_similarity"]["layout"]["title"]["text"] == "PE(i) · PE(j)：相近的位置彼此相似"
    assert any(shown(m).startswith("对正弦位置表，") and "往回 5 个词元" in shown(m) and "在全部 59 个位置上" in shown(m)
               for m in at.markdown)
    removed = removed_positions("test-reverse")
    metrics = {m.label: m for m in at.metric}
    assert metrics["词元准确率（训练后原样）"].value == f"{removed['accuracy_before']:.1%}"
    assert metrics["去掉位置编码"].value == f"{removed['accuracy_after']:.1%}"
    assert metrics["去掉位置编码"].help == (f"在 {removed['tokens']} 个测试词元上，损失 {removed['loss_before']:.3f} → "
                                        f"{removed['loss_after']:.3f}")
    assert "打乱位置编码" in metrics


def test_a_language_model_and_an_rnn_in_chinese(page_models, chinese):
    at = open_page(model="test-lm", lang="zh")
    assert not at.exception
    assert english_on_main(at) == []
    assert any(m.value == "`decoder.embed.positional` 是**正弦的**：与上面的公式相同。" for m in at.markdown)
    at = open_page(model="test-rnn", lang="zh")
    assert not at.exception
    assert english_on_main(at) == []
    assert [shown(info) for info in at.info] == ["test-rnn 没有位置编码：循环网络一个接一个地读入词元，顺序本来就体现在它的工作方式里。"]


def test_a_learned_table_in_chinese(learned, chinese):
    at = open_page(model="test-learned", lang="zh")
    assert not at.exception
    assert english_on_main(at) == []
    assert at.radio(key="pe_module").options == ["encoder.embed.positional (可学习)", "decoder.embed.positional (可学习)"]
    assert charts(at)["model_similarity"]["layout"]["title"]["text"] == "各位置之间的余弦相似度"
    task = checkpoint.load_checkpoint(checkpoint_folder.USER_DIR / "test-learned").task()
    longest = max(task.max_src_len, task.max_tgt_len)
    assert any(m.value.startswith("`encoder.embed.positional` 是**可学习的**：")
               and m.value.endswith(f"超出最长训练序列（{longest} 个词元）的位置从未被训练过。") for m in at.markdown)
    assert any(m.value.startswith("可学习的位置表不保证有这样的映射") for m in at.markdown)
