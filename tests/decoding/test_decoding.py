"""Decoding against references: full recomputation, exhaustive search, full-forward attention, hand-made math."""
import itertools

import pytest
import torch

from attnviz import TransformerConfig, build_model, capture
from attnviz.data.tokenizers import CharTokenizer
from attnviz.decoding.sampling import distribution
from attnviz.decoding.search import beam_search, greedy, sample
from attnviz.interpret.decoding_views import (attention_rows, beam_tree, compare_methods, hypotheses_table, steps_table,
                                              top_choices)
from attnviz.models.config import RNNConfig

PAD, BOS, EOS = 0, 1, 2
KINDS = ["seq2seq", "lm", "rnn"]
INPUTS = {"seq2seq": [5, 6, 7, 8, EOS], "lm": [BOS, 4, 5, 6], "rnn": [5, 6, 7, 8, EOS]}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run faster on one thread, above all on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


SEEDS = {"rnn": 3}  # a seed whose random (Bahdanau) RNN does not say EOS within 12 steps, as the tests decode that far


def make_model(kind, vocab=11, max_len=24, seed=None):
    """A small random model made peaky (scaled output layer), so float noise cannot flip an argmax."""
    torch.manual_seed(SEEDS.get(kind, 0) if seed is None else seed)
    if kind == "rnn":
        config = RNNConfig(src_vocab_size=vocab, tgt_vocab_size=vocab, embed_dim=16, hidden_size=32, max_len=max_len)
    else:
        config = TransformerConfig(src_vocab_size=vocab, tgt_vocab_size=vocab, d_model=32, n_heads=4,
                                   n_encoder_layers=0 if kind == "lm" else 2, n_decoder_layers=2, d_ff=64,
                                   max_len=max_len)
    model = build_model(config).eval()
    with torch.no_grad():
        model.lm_head.weight *= 30 if kind == "rnn" else 4
    return model


def full_logits(model, source, sequence):
    """Logits (T, V) of one full forward pass over a decoder input sequence (list of ids)."""
    tgt = torch.tensor([sequence])
    with torch.no_grad():
        return (model(source, tgt) if model.has_encoder else model(tgt))[0]


def source_and_context(kind):
    """(source tensor or None, decoder context) the way decoding starts: BOS, or the LM's prompt with BOS."""
    return (None, INPUTS[kind]) if kind == "lm" else (torch.tensor([INPUTS[kind]]), [BOS])


def greedy_by_recomputation(model, source, context, n_steps, forced=()):
    """Reference: run the whole model over the growing sequence each step; returns (ids, per-step probs)."""
    sequence, probs = list(context), []
    for step in range(n_steps):
        p = full_logits(model, source, sequence)[-1].softmax(-1)  # (V,)
        sequence.append(forced[step] if step < len(forced) else int(p.argmax()))
        probs.append(p)
        if sequence[-1] == EOS:
            break
    return sequence[len(context):], probs


def sequence_logprob(model, source, context, ids):
    """Reference: the model's log-probability of generated `ids` after `context`, from one full forward."""
    return outputs_logprobs(model, source, context, [ids])[0]


def outputs_logprobs(model, source, context, outputs):
    """Reference: log-probabilities of equally long outputs after `context`, from one batched full forward."""
    ids = torch.tensor(outputs)  # (B, N)
    tgt = torch.cat([torch.tensor([context]).expand(len(ids), -1), ids[:, :-1]], 1)  # (B, T0 + N - 1)
    with torch.no_grad():
        logits = model(source.expand(len(ids), -1), tgt) if model.has_encoder else model(tgt)  # (B, T, V)
    logp = logits[:, len(context) - 1:].log_softmax(-1)  # (B, N, V)
    return logp.gather(-1, ids[..., None])[..., 0].sum(-1).tolist()


# distribution -------------------------------------------------------------------------------------------

def test_distribution_matches_hand_computed_values():
    p = torch.tensor([0.5, 0.2, 0.15, 0.1, 0.05])
    logits = p.log() + 3.0  # softmax ignores the shift
    close = lambda a, b: torch.testing.assert_close(a, torch.tensor(b), atol=1e-6, rtol=0)
    close(distribution(logits), p.tolist())
    close(distribution(logits, top_k=3), [0.5 / 0.85, 0.2 / 0.85, 0.15 / 0.85, 0, 0])
    close(distribution(logits, top_p=0.6), [0.5 / 0.7, 0.2 / 0.7, 0, 0, 0])  # 0.5 < 0.6, 0.5 + 0.2 reaches it
    close(distribution(logits, top_p=0.3), [1.0, 0, 0, 0, 0])  # the top token alone is always kept
    sqrt = p.sqrt()
    close(distribution(logits, temperature=2.0), (sqrt / sqrt.sum()).tolist())  # p^(1/T), renormalised
    close(distribution(logits, temperature=2.0, top_k=2), [sqrt[0] / (sqrt[0] + sqrt[1]), sqrt[1] / (sqrt[0] + sqrt[1]),
                                                          0, 0, 0])
    # temperature 2 then top-p 0.5: tempered probs are .337, .213, .185, .151, .107; .337 + .213 reaches .5
    close(distribution(logits, temperature=2.0, top_p=0.5), [sqrt[0] / (sqrt[0] + sqrt[1]),
                                                            sqrt[1] / (sqrt[0] + sqrt[1]), 0, 0, 0])
    close(distribution(logits, temperature=0.0), [1.0, 0, 0, 0, 0])
    close(distribution(logits, top_k=0, top_p=1.0), p.tolist())  # 0 and 1 mean no limit
    batch = torch.stack([logits, logits.flip(0)])  # (2, V): rows are independent
    close(distribution(batch, top_k=1), [[1.0, 0, 0, 0, 0], [0, 0, 0, 0, 1.0]])


@pytest.mark.parametrize("settings", [dict(temperature=-1.0), dict(temperature="hot"), dict(top_k=-2), dict(top_k=1.5),
                                      dict(top_p=0.0), dict(top_p=1.5), dict(top_p="most")])
def test_distribution_rejects_impossible_settings(settings):
    with pytest.raises(ValueError, match=next(iter(settings))):
        distribution(torch.zeros(5), **settings)


# greedy ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_greedy_with_cache_equals_full_recomputation(kind):
    model = make_model(kind)
    source, context = source_and_context(kind)
    traced = greedy(model, None, INPUTS[kind], max_new_tokens=12)
    fast = greedy(model, None, INPUTS[kind], max_new_tokens=12, trace=False)
    expected, probs = greedy_by_recomputation(model, source, context, 12)
    assert len(expected) == 12  # long enough to mean something
    assert traced.ids() == fast.ids() == expected
    assert traced.sequence() == context + expected
    for step, p in zip(traced.steps, probs):
        torch.testing.assert_close(step.logits[0].softmax(-1), p, atol=1e-5, rtol=0)
        torch.testing.assert_close(step.top_probs[0], p.sort(descending=True).values[:10], atol=1e-5, rtol=0)
        torch.testing.assert_close(step.entropy[0], -(p * p.log()).sum(), atol=1e-5, rtol=0)
    assert traced.logprob.item() == pytest.approx(sequence_logprob(model, source, context, expected), abs=1e-4)
    assert fast.logprob.item() == pytest.approx(traced.logprob.item(), abs=1e-4)


def test_greedy_on_a_padded_batch_equals_each_row_alone():
    model = make_model("seq2seq", seed=3)
    rows = [[5, 6, 7, 8, EOS], [9, 4, EOS], [3, 3, 10, 7, EOS]]
    batch = torch.tensor([row + [PAD] * (5 - len(row)) for row in rows])  # (3, 5)
    together = greedy(model, None, batch, max_new_tokens=10)
    for i, row in enumerate(rows):
        alone = greedy(model, None, row, max_new_tokens=10)
        assert together.ids(i) == alone.ids() and together.stop[i] == alone.stop[0]
        assert together.logprob[i].item() == pytest.approx(alone.logprob.item(), abs=1e-4)
    lengths = [len(together.ids(i)) for i in range(len(rows))]
    shortest = lengths.index(min(lengths))
    assert len(set(lengths)) > 1 and together.stop[shortest] == "eos"  # rows end at different steps
    assert (together.tokens[shortest, lengths[shortest]:] == PAD).all()


@pytest.mark.parametrize("kind", KINDS)
def test_attention_rows_equal_one_full_forward_over_the_final_sequence(kind):
    model = make_model(kind)
    source, context = source_and_context(kind)
    decoded = greedy(model, None, INPUTS[kind], max_new_tokens=8)
    sequence = decoded.sequence()
    with capture(model) as full:
        full_logits(model, source, sequence[:-1])
    step_names = set(decoded.steps[0].attention)
    assert step_names and step_names == {name for name in full if name.startswith("decoder")}
    for name in step_names:
        expected = full[name][0, :, len(context) - 1:]  # (H, N, Tk): the rows of the generated steps
        torch.testing.assert_close(decoded.attention(name), expected, atol=1e-5, rtol=0)
        assert all(step.attention[name].shape[:3] == (1, expected.shape[0], 1) for step in decoded.steps)


# beam search ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", [0, 3])  # seed 3: the seq2seq model ends with EOS
def test_beam_of_width_one_is_greedy(kind, seed):
    model = make_model(kind, seed=seed)
    beam = beam_search(model, None, INPUTS[kind], max_new_tokens=10, width=1)
    expected, _ = greedy_by_recomputation(model, *source_and_context(kind), 10)
    assert beam.ids() == expected
    assert beam.logprob.item() == pytest.approx(greedy(model, None, INPUTS[kind], max_new_tokens=10).logprob.item(),
                                                abs=1e-4)


def all_outputs(vocab, longest):
    """Every output of at most `longest` tokens, grouped by length: ending with EOS, or cut at `longest`."""
    words = [t for t in range(vocab) if t != EOS]
    groups = [[list(prefix) + [EOS] for prefix in itertools.product(words, repeat=n)] for n in range(longest)]
    return groups + [[list(p) for p in itertools.product(words, repeat=longest)]]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_wide_beam_finds_the_best_outputs_of_an_exhaustive_search(kind, length_penalty):
    """5 tokens, 3 steps: at most 4 * 4 * 5 = 80 extensions a step, so width 80 prunes nothing and must be exact."""
    model = make_model(kind, vocab=5)
    prompt = [BOS, 4, 3] if kind == "lm" else [4, 3, 3, EOS]
    source, context = (None, prompt) if kind == "lm" else (torch.tensor([prompt]), [BOS])
    scored = sorted((logprob / len(ids) ** length_penalty, ids) for group in all_outputs(5, 3)
                    for ids, logprob in zip(group, outputs_logprobs(model, source, context, group)))
    scored.reverse()
    beam = beam_search(model, None, prompt, max_new_tokens=3, width=80, length_penalty=length_penalty, n_best=3)
    assert [h.tokens for h in beam.hypotheses] == [ids for _, ids in scored[:3]]
    assert [h.score for h in beam.hypotheses] == pytest.approx([s for s, _ in scored[:3]], abs=1e-4)
    assert [h.finished for h in beam.hypotheses] == [ids[-1] == EOS for _, ids in scored[:3]]


@pytest.mark.parametrize("kind", ["seq2seq", "lm"])
@pytest.mark.parametrize("length_penalty", [0.0, 0.6])
def test_beam_hypotheses_are_sorted_scored_and_traced_as_a_tree(kind, length_penalty):
    model = make_model(kind, seed=3)
    source, context = source_and_context(kind)
    beam = beam_search(model, None, INPUTS[kind], max_new_tokens=8, width=4, length_penalty=length_penalty, n_best=4)
    scores = [h.score for h in beam.hypotheses]
    assert len(scores) == 4 and scores == sorted(scores, reverse=True)
    for h in beam.hypotheses:
        assert h.logprob == pytest.approx(sequence_logprob(model, source, context, h.tokens), abs=1e-4)
        assert h.score == pytest.approx(h.logprob / len(h.tokens) ** length_penalty)
        for t, row in enumerate(h.rows):  # the path through the steps' rows spells the hypothesis
            assert beam.steps[t].beams[row].tokens == h.tokens[:t]
    for step, after in zip(beam.steps, beam.steps[1:]):
        kept = [c for c in step.candidates if c.fate == "kept"]
        assert sorted(c.row for c in kept) == list(range(len(after.beams)))
        for c in kept:
            assert after.beams[c.row].tokens == step.beams[c.parent].tokens + [c.token]
            assert after.input[c.row] == c.token
        for c in step.candidates:  # an EOS extension finishes if among the step's 4 best extensions of all
            better = sum(other.logprob > c.logprob for other in step.candidates)
            if c.token == EOS:
                assert (c.fate == "finished") == (better < 4)
            elif c.fate == "pruned":
                assert c.logprob <= min(k.logprob for k in kept)
    assert beam.ids() == beam.hypotheses[0].tokens


# sampling -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_top_k_one_and_temperature_zero_sampling_are_greedy(kind):
    model = make_model(kind)
    expected = greedy(model, None, INPUTS[kind], max_new_tokens=10)
    for settings in (dict(top_k=1), dict(temperature=0.0), dict(top_p=1e-6, temperature=3.0)):
        sampled = sample(model, None, INPUTS[kind], max_new_tokens=10, seed=5, **settings)
        assert sampled.ids() == expected.ids(), settings
        assert sampled.logprob.item() == pytest.approx(expected.logprob.item(), abs=1e-4)


@pytest.mark.parametrize("kind", ["seq2seq", "lm"])
def test_sampling_repeats_with_a_seed_and_differs_across_seeds(kind):
    model = make_model(kind)
    run = lambda seed: sample(model, None, INPUTS[kind], max_new_tokens=10, temperature=2.0, seed=seed).ids()
    assert run(7) == run(7)
    assert len({tuple(run(seed)) for seed in range(4)}) > 1


def test_sampled_tokens_follow_the_distribution():
    model = make_model("seq2seq")
    settings = dict(temperature=1.5, top_k=5, top_p=0.9)
    n = 4000
    sampled = sample(model, None, torch.tensor([INPUTS["seq2seq"]] * n), max_new_tokens=1, seed=0, **settings)
    logits = full_logits(model, torch.tensor([INPUTS["seq2seq"]]), [BOS])[0]  # (V,)
    expected = distribution(logits, **settings)
    frequency = torch.bincount(sampled.tokens[:, 0], minlength=len(expected)).float() / n
    assert (frequency[expected == 0] == 0).all()
    torch.testing.assert_close(frequency, expected, atol=0.04, rtol=0)  # about 5 standard errors
    torch.testing.assert_close(sampled.steps[0].probs(**settings)[0], expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(sampled.steps[0].top_probs[0, :3], expected.sort(descending=True).values[:3],
                               atol=1e-5, rtol=0)


def sampling_by_recomputation(model, source, context, n_steps, settings_at):
    """Reference: draw each token from a full forward over the sequence so far, with `settings_at(step)` (its seed
    seeding a new generator whenever it changes), one multinomial draw per step."""
    sequence, generator, seed = list(context), None, object()
    for step in range(n_steps):
        settings = dict(settings_at(step))
        if settings["seed"] != seed:
            seed = settings["seed"]
            generator = torch.Generator().manual_seed(seed)
        view = {name: value for name, value in settings.items() if name != "seed"}
        probs = distribution(full_logits(model, source, sequence)[-1], **view)  # (V,)
        sequence.append(int(torch.multinomial(probs[None], 1, generator=generator)[0, 0]))
        if sequence[-1] == EOS:
            break
    return sequence[len(context):]


@pytest.mark.parametrize("kind", ["seq2seq", "lm"])
def test_a_change_of_settings_keeps_the_tokens_before_it_and_draws_the_rest_with_the_new_ones(kind):
    model = make_model(kind, seed=1)
    source, context = source_and_context(kind)
    settings = dict(temperature=1.0, top_k=None, top_p=None, seed=0)
    before = sample(model, None, INPUTS[kind], max_new_tokens=10, **settings)
    hotter = dict(settings, temperature=2.0, top_k=6)
    changed = sample(model, None, INPUTS[kind], max_new_tokens=10, **settings, changes={3: dict(temperature=2.0,
                                                                                                 top_k=6)})
    assert changed.ids()[:3] == before.ids()[:3]
    assert changed.ids() == sampling_by_recomputation(model, source, context, 10,
                                                      lambda t: hotter if t >= 3 else settings)
    step = changed.steps[3]
    expected = distribution(full_logits(model, source, context + changed.ids()[:3])[-1], temperature=2.0, top_k=6)
    torch.testing.assert_close(step.top_probs[0], expected.sort(descending=True).values[:step.top_probs.shape[1]],
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(step.entropy[0], torch.special.entr(expected).sum(), atol=1e-4, rtol=0)
    reseeded = sample(model, None, INPUTS[kind], max_new_tokens=10, **settings, changes={2: dict(seed=5)})
    assert reseeded.ids() == sampling_by_recomputation(model, source, context, 10,
                                                       lambda t: dict(settings, seed=5) if t >= 2 else settings)
    at_start = sample(model, None, INPUTS[kind], max_new_tokens=10, **settings, changes={0: dict(temperature=2.0,
                                                                                                  top_k=6)})
    assert at_start.ids() == sample(model, None, INPUTS[kind], max_new_tokens=10, **hotter).ids()


def test_a_change_of_settings_is_checked():
    model = make_model("seq2seq")
    with pytest.raises(ValueError, match="only temperature, top_k, top_p, seed"):
        sample(model, None, INPUTS["seq2seq"], changes={2: dict(width=3)})
    with pytest.raises(ValueError, match="temperature"):
        sample(model, None, INPUTS["seq2seq"], changes={2: dict(temperature=-1.0)})
    with pytest.raises(ValueError, match="not a step"):
        sample(model, None, INPUTS["seq2seq"], changes={-1: dict(temperature=2.0)})


# forcing --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_a_forced_token_is_taken_and_decoding_continues_from_it(kind):
    model = make_model(kind)
    source, context = source_and_context(kind)
    free = greedy(model, None, INPUTS[kind], max_new_tokens=10)
    token = next(t for t in range(3, 11) if t != free.ids()[2])
    forced = greedy(model, None, INPUTS[kind], max_new_tokens=10, forced={2: token})
    assert forced.ids()[:3] == free.ids()[:2] + [token]
    assert [s.forced for s in forced.steps[:4]] == [False, False, True, False]
    expected, _ = greedy_by_recomputation(model, source, context, 10, forced=forced.ids()[:3])
    assert forced.ids() == expected
    assert greedy(model, None, INPUTS[kind], max_new_tokens=10, forced=forced.ids()[:3]).ids() == expected  # prefix
    beam = beam_search(model, None, INPUTS[kind], max_new_tokens=10, width=3, n_best=3, forced={2: token})
    assert all(h.tokens[2] == token for h in beam.hypotheses if len(h.tokens) > 2)
    sampled = sample(model, None, INPUTS[kind], max_new_tokens=10, seed=1, forced=forced.ids()[:3])
    assert sampled.ids()[:3] == forced.ids()[:3] and all(s.forced for s in sampled.steps[:3])


def test_forcing_eos_ends_every_method():
    model = make_model("seq2seq")
    for run in (greedy, sample, beam_search):
        decoded = run(model, None, INPUTS["seq2seq"], forced={1: EOS})
        assert decoded.ids()[1:] == [EOS] and decoded.stop == ["eos"], run.__name__


# limits and errors ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_decoding_stops_at_the_models_max_len(kind):
    model = make_model(kind, max_len=9)
    context_length = len(source_and_context(kind)[1])
    decoded = greedy(model, None, INPUTS[kind], max_new_tokens=50)
    assert len(decoded.sequence()) == 9 and decoded.stop == ["max_len"] and len(decoded.steps) == 9 - context_length
    for seed in range(3):
        for decoded in (sample(model, None, INPUTS[kind], max_new_tokens=50, seed=seed),
                        beam_search(model, None, INPUTS[kind], max_new_tokens=50, width=2, length_penalty=seed)):
            sequence = decoded.sequence()
            assert len(sequence) <= 9 and decoded.stop in (["eos"], ["max_len"])
            assert (decoded.stop == ["eos"]) == (sequence[-1] == EOS and len(sequence) <= 9)
            full_logits(model, decoded.source, sequence)  # the whole result still fits the model
    assert greedy(model, None, INPUTS[kind], max_new_tokens=2).stop == ["max_new_tokens"]


def test_a_tokenizer_gives_the_special_ids():
    model = make_model("lm")
    tokenizer = CharTokenizer("abcdefg")  # 4 specials + 7 characters = the model's 11 ids
    assert greedy(model, tokenizer, tokenizer.encode("cab")).ids() == greedy(model, None, [6, 4, 5]).ids()


def test_a_language_model_prompt_gets_one_bos():
    model = make_model("lm")
    with_bos, without = greedy(model, None, [BOS, 4, 5], max_new_tokens=4), greedy(model, None, [4, 5], max_new_tokens=4)
    assert with_bos.context.tolist() == without.context.tolist() == [[BOS, 4, 5]]
    assert with_bos.ids() == without.ids()
    empty = greedy(model, None, [], max_new_tokens=4)
    expected, _ = greedy_by_recomputation(model, None, [BOS], 4)
    assert empty.context.tolist() == [[BOS]] and empty.ids() == expected


def test_a_prompt_at_or_over_max_len():
    model = make_model("lm", max_len=9)
    full = greedy(model, None, list(range(3, 11)), max_new_tokens=5)  # BOS + 8 tokens = 9
    assert full.ids() == [] and full.stop == ["max_len"] and full.steps == []
    with pytest.raises(ValueError, match="at most 9"):
        greedy(model, None, list(range(3, 11)) + [3])


@pytest.mark.parametrize("call, message", [
    (lambda m: greedy(m, None, [5, 99, EOS]), "token id 99"),
    (lambda m: greedy(m, None, []), "empty"),
    (lambda m: greedy(m, None, [[5, EOS], [5]]), "equal length"),
    (lambda m: greedy(m, None, [5] * 30), "at most 24"),
    (lambda m: greedy(m, None, [5, EOS], forced={1: 11}), "cannot force token 11"),
    (lambda m: greedy(m, None, [5, EOS], forced={-1: 4}), "steps are numbered"),
    (lambda m: greedy(m, None, [5, EOS], max_new_tokens=-1), "max_new_tokens"),
    (lambda m: sample(m, None, [5, EOS], temperature=-1), "temperature"),
    (lambda m: beam_search(m, None, [[5, EOS], [6, EOS]]), "one input at a time"),
    (lambda m: greedy(make_model("lm"), None, [[BOS, 5], [5, 6]]), "some prompts start with BOS"),
    (lambda m: beam_search(m, None, [5, EOS], width=0), "width"),
])
def test_bad_input_is_a_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call(make_model("seq2seq"))


def test_attention_needs_a_trace():
    decoded = greedy(make_model("seq2seq"), None, INPUTS["seq2seq"], max_new_tokens=3, trace=False)
    assert decoded.steps == [] and len(decoded.ids()) == 3
    with pytest.raises(ValueError, match="trace=True"):
        decoded.attention("decoder.layers.0.self_attn.hook_pattern")


# views for the step-by-step page ---------------------------------------------------------------------------

TOKENIZER = CharTokenizer("abcdefg")  # 4 specials + 7 characters = the models' 11 ids


def test_top_choices_are_the_most_likely_tokens_under_the_settings_plus_the_chosen_one():
    step = greedy(make_model("seq2seq"), None, INPUTS["seq2seq"], max_new_tokens=2).steps[0]
    expected = distribution(step.logits[0], temperature=0.5, top_k=4)  # (V,)
    ids, probs = top_choices(step, 0, n=3, temperature=0.5, top_k=4)
    assert ids == expected.argsort(descending=True)[:3].tolist()
    torch.testing.assert_close(probs, expected[ids])
    unlikely = int(expected.argmin())
    ids, probs = top_choices(step, 0, n=3, temperature=0.5, top_k=4, chosen=unlikely)
    assert len(ids) == 4 and ids[-1] == unlikely and probs[-1] == 0  # outside the top-k: shown with probability 0


@pytest.mark.parametrize("kind", ["seq2seq", "lm"])
def test_steps_table_matches_recomputation(kind):
    model = make_model(kind)
    source, context = source_and_context(kind)
    decoded = greedy(model, TOKENIZER, INPUTS[kind], max_new_tokens=6, forced={1: 9})
    expected, probs = greedy_by_recomputation(model, source, context, 6, forced=[decoded.ids()[0], 9])
    table = steps_table(decoded, TOKENIZER)
    assert list(table["step"]) == list(range(1, len(expected) + 1))
    assert list(table["chose"]) == TOKENIZER.labels(expected)
    assert list(table["reads"]) == TOKENIZER.labels((context + expected)[len(context) - 1:-1])
    chosen = [p[token].item() for p, token in zip(probs, expected)]
    assert table["probability"].tolist() == pytest.approx(chosen, abs=1e-5)
    ranks = [int((p > p[token]).sum()) + 1 for p, token in zip(probs, expected)]
    assert list(table["rank"]) == ranks and ranks[0] == 1
    assert list(table["forced"]) == [t == 1 for t in range(len(expected))]
    entropies = [-(p * p.log()).sum().item() for p in probs]
    assert table["entropy"].tolist() == pytest.approx(entropies, abs=1e-4)


def test_beam_views_follow_the_best_hypothesis():
    model = make_model("seq2seq", seed=3)
    source, context = source_and_context("seq2seq")
    beam = beam_search(model, TOKENIZER, INPUTS["seq2seq"], max_new_tokens=8, width=3, n_best=3)
    table = hypotheses_table(beam, TOKENIZER)
    assert list(table["output"]) == [TOKENIZER.decode(h.tokens) for h in beam.hypotheses]
    assert table["log-prob"].tolist() == pytest.approx(
        [sequence_logprob(model, source, context, h.tokens) for h in beam.hypotheses], abs=1e-4)
    steps = steps_table(beam, TOKENIZER)
    assert list(steps["chose"]) == TOKENIZER.labels(beam.hypotheses[0].tokens)
    _, probs = greedy_by_recomputation(model, source, context, len(beam.ids()), forced=beam.ids())
    assert steps["probability"].tolist() == pytest.approx([p[t].item() for p, t in zip(probs, beam.ids())], abs=1e-5)


def test_beam_tree_nodes_spell_the_beams_and_the_best_path():
    beam = beam_search(make_model("seq2seq", seed=3), TOKENIZER, INPUTS["seq2seq"], max_new_tokens=8, width=3)
    nodes = beam_tree(beam, TOKENIZER)
    by_id = {n["id"]: n for n in nodes}

    def spelled(node):  # tokens from the start down to this node
        return [] if node["parent"] is None else spelled(by_id[node["parent"]]) + [node["token"]]

    assert nodes[0]["fate"] == "start" and len(nodes) == 1 + sum(len(s.candidates) for s in beam.steps)
    for t, step in enumerate(beam.steps):
        at_step = [n for n in nodes if n["step"] == t + 1]
        assert sorted(spelled(n)[:-1] for n in at_step) == sorted(step.beams[c.parent].tokens for c in step.candidates)
        assert [n["fate"] for n in at_step] == [c.fate for c in step.candidates]
    best = [n for n in nodes if n["best"]]
    assert spelled(best[-1]) == beam.hypotheses[0].tokens and len(best) == len(beam.hypotheses[0].tokens) + 1
    assert best[-1]["fate"] == ("finished" if beam.hypotheses[0].finished else "kept")
    with pytest.raises(ValueError, match="beam"):
        beam_tree(greedy(make_model("seq2seq"), None, INPUTS["seq2seq"]))


@pytest.mark.parametrize("kind", ["seq2seq", "lm"])
def test_attention_rows_of_the_first_steps_equal_one_full_forward(kind):
    model = make_model(kind)
    source, context = source_and_context(kind)
    decoded = greedy(model, TOKENIZER, INPUTS[kind], max_new_tokens=8)
    sequence, first = decoded.sequence(), len(context) - 1
    with capture(model) as full:
        full_logits(model, source, sequence[:-1])
    kinds = ["decoder self", "cross"] if kind == "seq2seq" else ["decoder self"]
    for kind_name, module in zip(kinds, ["self_attn", "cross_attn"]):
        rows = attention_rows(decoded, kind_name, steps=3)
        keys = source[0].tolist() if module == "cross_attn" else sequence[:first + 3]
        expected = torch.stack([full[f"decoder.layers.{layer}.{module}.hook_pattern"][0, :, first:first + 3, :len(keys)]
                                for layer in range(2)])  # (L, H, 3, Tk)
        torch.testing.assert_close(rows.patterns, expected, atol=1e-5, rtol=0)
        assert rows.queries == sequence[first:first + 3] and rows.keys == keys
        causal = torch.ones(3, len(keys), dtype=torch.bool).triu(first + 1) if module == "self_attn" else False
        assert torch.equal(rows.masked, torch.zeros(3, len(keys), dtype=torch.bool) | causal)
    if kind == "lm":
        with pytest.raises(ValueError, match="no cross attention"):
            attention_rows(decoded, "cross")


def test_compare_methods_lists_each_run_with_its_log_probability():
    model = make_model("seq2seq", seed=3)
    source, context = source_and_context("seq2seq")
    table = compare_methods(model, TOKENIZER, INPUTS["seq2seq"], max_new_tokens=6, seeds=[0, 1], temperature=1.5,
                            width=2)
    assert list(table["method"]) == ["greedy", "beam", "sample", "sample"]
    runs = [greedy(model, TOKENIZER, INPUTS["seq2seq"], 6), beam_search(model, TOKENIZER, INPUTS["seq2seq"], 6, width=2)]
    runs += [sample(model, TOKENIZER, INPUTS["seq2seq"], 6, temperature=1.5, seed=seed) for seed in [0, 1]]
    assert list(table["output"]) == [TOKENIZER.decode(run.ids()) for run in runs]
    assert table["log-prob"].tolist() == pytest.approx(
        [sequence_logprob(model, source, context, run.ids()) for run in runs], abs=1e-4)
    assert table["per token"].tolist() == pytest.approx(list(table["log-prob"] / [len(r.ids()) for r in runs]))


def test_an_impossible_setting_is_refused_in_the_sessions_language(in_chinese):
    with pytest.raises(ValueError, match=r"^top_p=1\.5 is not possible: use a probability in \(0, 1\]"):
        distribution(torch.zeros(5), top_p=1.5)
    with in_chinese() as zh, pytest.raises(ValueError) as refused:
        distribution(torch.zeros(5), top_p=1.5)
    assert str(refused.value) == zh("top_p={top_p} is not possible: use a probability in (0, 1] (1 or None: no limit)",
                                    top_p=1.5)
