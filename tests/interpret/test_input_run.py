"""run_input / ablate_input / fit_input / shift_check / positional_tables, against recomputation."""
import pytest
import torch

from attnviz import TransformerConfig, build_model
from attnviz.data.tasks import make_task
from attnviz.data.tokenizers import BOS, EOS
from attnviz.decoding.search import greedy
from attnviz.interpret.input_run import LM_CONTINUATION, ablate_input, fit_input, run_input
from attnviz.interpret.patterns import parse_pattern_name
from attnviz.interpret.positional import positional_tables, shift_check
from attnviz.models.config import RNNConfig
from attnviz.models.hooks import ablate, capture
from attnviz.models.positional import sinusoidal_table


@pytest.fixture(scope="module")
def task():
    return make_task("reverse", alphabet="abcd", min_len=3, max_len=6, n_train=50, n_val=10, n_test=20)


def transformer(task, **options):
    torch.manual_seed(0)
    vocab = task.tokenizer.vocab_size
    return build_model(TransformerConfig(vocab, vocab, d_model=16, n_heads=2, d_ff=32, max_len=40, **options)).eval()


def test_run_input_captures_the_forward_pass_over_input_and_greedy_output(task):
    model = transformer(task)
    run = run_input(model, task, "abcd")
    src = torch.tensor([[*task.tokenizer.encode("abcd"), EOS]])
    decoded = greedy(model, task.tokenizer, src, max_new_tokens=run.max_new_tokens, trace=False)
    assert torch.equal(run.src, src) and run.output == task.tokenizer.decode(decoded.ids(0))
    assert run.tgt_in[0].tolist() == [BOS, *decoded.ids(0)][:-1] and run.tgt_out[0].tolist() == decoded.ids(0)
    assert run.src_labels == ["a", "b", "c", "d", "<eos>"] and run.tgt_labels[0] == "<bos>"
    with torch.no_grad(), capture(model) as cache:
        model(src, run.tgt_in)
    assert set(run.cache) == set(cache)
    for name in cache:
        assert torch.allclose(run.cache[name], cache[name])
    T = run.tgt_in.shape[1]
    assert torch.equal(run.blocked("decoder self"), torch.ones(T, T).triu(1).bool())
    assert run.kinds == ["encoder self", "decoder self", "cross"]
    assert run.blocked("cross") is None and run.labels("cross") == (run.tgt_labels, run.src_labels)


def test_long_input_is_cut_to_the_longest_prefix_that_fits(task):
    text, notes = fit_input(task, "abcdabcdab", 7)
    assert text == "abcdabc" and "10 tokens" in notes[0]
    assert fit_input(task, "abc", 7) == ("abc", [])
    run = run_input(transformer(task), task, "abcd" * 30, max_tokens=12)
    assert run.src.shape == (1, 13) and run.text == ("abcd" * 3)


def test_bad_input_is_a_clear_error_or_note(task):
    model = transformer(task)
    with pytest.raises(ValueError, match="empty"):
        run_input(model, task, "  ")
    run = run_input(model, task, "abz")
    assert any("'z'" in note for note in run.notes)


def test_ablate_input_reports_probabilities_and_output_with_heads_off(task):
    model = transformer(task)
    run = run_input(model, task, "dcba")
    heads = {("decoder.layers.0.cross_attn", 0), ("encoder.layers.0.self_attn", 1)}
    effect = ablate_input(model, task, run, heads)
    with torch.no_grad():
        before = model(run.src, run.tgt_in).softmax(-1)[0]  # (T, V)
        with ablate(model, heads):
            after = model(run.src, run.tgt_in).softmax(-1)[0]
            decoded = greedy(model, task.tokenizer, run.src, max_new_tokens=run.max_new_tokens, trace=False)
    positions = torch.arange(run.tgt_out.shape[1])
    assert torch.allclose(effect.probs_before, before[positions, run.tgt_out[0]], atol=1e-6)
    assert torch.allclose(effect.probs_after, after[positions, run.tgt_out[0]], atol=1e-6)
    assert effect.output_after == task.tokenizer.decode(decoded.ids(0))
    unchanged = ablate_input(model, task, run, set())
    assert unchanged.output_after == run.output and torch.allclose(unchanged.probs_after, unchanged.probs_before)


def test_language_model_continues_its_prompt():
    lm_task = make_task("text", text="the cat sat on the mat. " * 20, block_size=16)
    model = transformer(lm_task, n_encoder_layers=0)
    run = run_input(model, lm_task, "the")
    assert run.src is None and run.ids[0].tolist() == [BOS, *lm_task.tokenizer.encode("the")]
    assert run.tgt_in.shape[1] == 3 + LM_CONTINUATION  # BOS + prompt + continuation, minus the last
    assert {parse_pattern_name(name)[0] for name in run.cache} == {"decoder self"}


def test_shift_check_is_exact_for_sinusoids_only():
    matrix, error = shift_check(sinusoidal_table(50, 16), 7)
    assert matrix.shape == (16, 16) and error < 1e-5
    torch.manual_seed(0)
    assert shift_check(torch.randn(50, 16), 7)[1] > 0.5
    with pytest.raises(ValueError, match="between 1 and 49"):
        shift_check(sinusoidal_table(50, 16), 50)


def test_positional_tables(task):
    tables = positional_tables(transformer(task, positional="learned"))
    assert list(tables) == ["encoder.embed.positional", "decoder.embed.positional"]
    assert tables["encoder.embed.positional"][0] == "learned" and tables["encoder.embed.positional"][1].shape == (40, 16)
    assert positional_tables(transformer(task, positional="none")) == {}
    vocab = task.tokenizer.vocab_size
    assert positional_tables(build_model(RNNConfig(vocab, vocab))) == {}


def rnn(task):
    torch.manual_seed(0)
    vocab = task.tokenizer.vocab_size
    return build_model(RNNConfig(vocab, vocab, embed_dim=8, hidden_size=16, attention="bahdanau", max_len=40)).eval()


def tensors_of(value):
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in tensors_of(v)]
    return [t for v in vars(value).values() for t in tensors_of(v)] if hasattr(value, "__dict__") else []


@pytest.mark.parametrize("make", [transformer, rnn])
def test_the_input_run_puts_every_tensor_on_the_model_s_device_and_returns_cpu_results(task, make):
    """With the process default device set to 'meta', any tensor made without naming a device is a meta tensor,
    which a CPU model cannot read: the run must create its tensors on the model's device (or the CPU, for the
    pages) and give the same results as outside."""
    model = make(task)
    expected = run_input(model, task, "abcd")
    with torch.device("meta"):
        assert torch.empty(1).device.type == "meta"  # the trap is set
        got = run_input(model, task, "abcd")
    assert all(t.device.type == "cpu" for t in tensors_of(got))
    assert got.output == expected.output and torch.equal(got.tgt_in, expected.tgt_in)
    for name in expected.cache:
        torch.testing.assert_close(got.cache[name], expected.cache[name])


def test_ablating_an_input_run_returns_cpu_results_whatever_the_default_device(task):
    model = transformer(task)
    run = run_input(model, task, "abcd")
    heads = {("decoder.layers.0.cross_attn", 0)}
    expected = ablate_input(model, task, run, heads)
    with torch.device("meta"):
        got = ablate_input(model, task, run, heads)
    assert all(t.device.type == "cpu" for t in tensors_of(got))
    torch.testing.assert_close(got.probs_after, expected.probs_after)
    torch.testing.assert_close(got.probs_before, expected.probs_before)


def test_what_every_page_says_about_an_input_comes_in_the_sessions_language(task, in_chinese):
    from attnviz.checks import EMPTY_INPUT
    from attnviz.interpret.input_run import input_notes

    model = transformer(task)
    with pytest.raises(ValueError, match="^The input is empty or only spaces"):
        input_notes(task, "   ")
    assert run_input(model, task, "zab", max_tokens=2).notes == [
        "The model's tokenizer does not know 'z': it reads it as <unk>, so expect a strange output.",
        "The input is 3 tokens long; only its first 2 are used (\u201cza\u201d): more than that per side makes "
        "unreadable heatmaps."]
    with in_chinese() as zh:
        with pytest.raises(ValueError) as empty:
            input_notes(task, "   ")
        notes = run_input(model, task, "yzab", max_tokens=3).notes
    assert str(empty.value) == zh(EMPTY_INPUT)
    unknown = zh("The model's tokenizer does not know {characters}: it reads it as {unknown_token}, so expect a "
                 "strange output.", "The model's tokenizer does not know {characters}: it reads them as "
                 "{unknown_token}, so expect a strange output.", 2, characters="'y', 'z'", unknown_token="<unk>")
    cut = zh("{what} is {n_tokens} tokens long; only its first {max_tokens} are used (\u201c{kept}\u201d): more than "
             "that per side makes unreadable heatmaps.", what=zh("The input"), n_tokens=4, max_tokens=3, kept="yza")
    assert notes == [unknown, cut]
