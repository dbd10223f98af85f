"""A step-by-step decoding plan: built one step at a time it equals one run of the library, and its URL form
rebuilds it exactly (bitwise the same tokens and probabilities)."""
import pytest
import torch

from attnviz import TransformerConfig, build_model
from attnviz.data.tokenizers import CharTokenizer
from attnviz.decoding.search import beam_search, sample
from attnviz.interpret.decoding_plan import Plan, sampling_settings

TOKENIZER = CharTokenizer("abcdefg")  # 4 specials + 7 characters: 11 ids
SOURCE = [5, 6, 7, 8, TOKENIZER.eos_id]
TOKENS = list(range(2, 11))  # what the page lets you force: not PAD or BOS


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(TransformerConfig(src_vocab_size=11, tgt_vocab_size=11, d_model=16, n_heads=2,
                                         n_encoder_layers=1, n_decoder_layers=1, d_ff=32, max_len=24)).eval()


COLD = sampling_settings(1.0, 0, 1.0, 0)
HOT = sampling_settings(1 / 3 + 1, 5, 0.9, 0)  # 1.3333333333333333: a float that must travel exactly


def same_decoding(a, b):
    """Bitwise the same tokens and, step by step, the same distributions."""
    return a.ids() == b.ids() and len(a.steps) == len(b.steps) and all(
        torch.equal(x.logits, y.logits) and torch.equal(x.top_probs, y.top_probs) for x, y in zip(a.steps, b.steps))


def test_steps_one_at_a_time_equal_one_run_and_new_settings_apply_from_the_next_step(model):
    plan = Plan.start("sample", COLD)
    for taken in range(2, 5):
        plan = plan.go_to(taken, COLD)
    assert same_decoding(plan.decode(model, TOKENIZER, SOURCE), sample(model, TOKENIZER, SOURCE, 4, **COLD))
    assert plan.pending(HOT) and not plan.pending(COLD)
    hot = plan.go_to(7, HOT)
    assert hot.settings_at(3) == COLD and hot.settings_at(4) == HOT and hot.next_settings == HOT
    decoded = hot.decode(model, TOKENIZER, SOURCE)
    assert decoded.ids()[:4] == plan.decode(model, TOKENIZER, SOURCE).ids()
    seed_free = {name: value for name, value in HOT.items() if name != "seed"}
    assert same_decoding(decoded, sample(model, TOKENIZER, SOURCE, 7, **COLD, changes={4: seed_free}))
    assert same_decoding(hot.replay(HOT).decode(model, TOKENIZER, SOURCE), sample(model, TOKENIZER, SOURCE, 7, **HOT))


def test_forcing_clamping_and_a_change_of_method(model):
    plan = Plan.start("sample", COLD).go_to(3, COLD).go_to(6, HOT).force(1, 9)
    assert plan.taken == 6 and plan.forced == ((1, 9),)
    assert plan.decode(model, TOKENIZER, SOURCE).ids()[1] == 9
    short = plan.clamped(3)
    assert short.taken == 3 and short.stretches == plan.stretches[:1] and short.pending(HOT)
    assert plan.follow("sample", COLD) == plan  # sampling keeps the settings of the steps taken
    beam = plan.follow("beam", dict(width=2, n_best=2, length_penalty=0.0))
    assert beam.taken == 6 and beam.forced == plan.forced  # another method: the steps taken, decoded with it
    wider = beam.follow("beam", dict(width=3, n_best=3, length_penalty=0.5))  # beam search searches again
    expected = beam_search(model, TOKENIZER, SOURCE, 6, width=3, n_best=3, length_penalty=0.5, forced={1: 9})
    assert [h.tokens for h in wider.decode(model, TOKENIZER, SOURCE).hypotheses] == [h.tokens
                                                                                    for h in expected.hypotheses]


def link(plan):
    return {name: value for name, value in plan.params().items() if value is not None}


def test_a_link_rebuilds_the_plan_bitwise(model):
    plan = Plan.start("sample", COLD).go_to(3, COLD).go_to(5, HOT).go_to(8, COLD).force(6, 4)
    params = link(plan)
    assert params == {"steps": "8", "forced": "7:4",
                      "segments": "1:1.0,0,1.0,0;4:1.3333333333333333,5,0.9,0;6:1.0,0,1.0,0"}
    again, notes = Plan.from_params(params, "sample", COLD, 10, TOKENS, 11)
    assert notes == [] and again == plan
    assert same_decoding(again.decode(model, TOKENIZER, SOURCE), plan.decode(model, TOKENIZER, SOURCE))
    greedy = Plan.start("greedy", {}).go_to(4, {}).force(2, 3)
    assert link(greedy) == {"steps": "4", "forced": "3:3"}
    assert Plan.from_params(link(greedy), "greedy", {}, 10, TOKENS, 11) == (greedy, [])


@pytest.mark.parametrize("params, note", [
    ({"steps": "0"}, "steps='0' is outside 1 to 10: starting at step 1"),
    ({"steps": "2.5"}, "steps='2.5' is not a whole number"),
    ({"steps": "3", "forced": "4:5"}, "a forced step='4' is outside 1 to 3"),
    ({"steps": "3", "forced": "1:1"}, "token id 1 cannot be forced"),
    ({"steps": "3", "segments": "1:1.0,0,1.0"}, "a segment holds temperature, top_k, top_p, seed"),
    ({"steps": "3", "segments": "1:1.0,0,1.0,0;1:2.0,0,1.0,0"}, "each after the one before"),
    ({"steps": "3", "segments": "1:nan,0,1.0,0"}, "temperature='nan' is outside 0.0 to 2.0"),
    ({"steps": "3", "segments": "1:1.0,12,1.0,0"}, "top_k='12' is outside 0 to 11"),
])
def test_bad_link_values_fall_back_and_say_why(params, note):
    plan, notes = Plan.from_params(params, "sample", COLD, 10, TOKENS, 11)
    assert len(notes) == 1 and note in notes[0]
    assert plan.forced == () and plan.stretches == Plan.start("sample", COLD).stretches
    assert plan.taken == (1 if "steps" in notes[0] else 3)


def test_a_links_misfit_and_the_settings_are_said_in_the_sessions_language(in_chinese):
    from attnviz.interpret.decoding_plan import describe_sampling

    settings = sampling_settings(1.5, 0, 0.9, 7)
    assert describe_sampling(settings) == "temperature 1.5, no top-k, top-p 0.9, seed 7"
    with in_chinese() as zh:
        plan, notes = Plan.from_params({"steps": "many", "forced": "9:3"}, "greedy", {}, 10, TOKENS, 11)
        described = describe_sampling(settings)
    refusal = zh("{name}={text} is not a whole number", name="steps", text="'many'")
    outside = zh("{name}={text} is outside {low} to {high}", name=zh("a forced step"), text="'9'", low=1, high=1)
    assert plan == Plan.start("greedy", {}) and notes == [
        zh("The link's {error}: starting at step 1.", error=refusal),
        zh("The link's forced={forced} does not fit ({error}): no token is forced.", forced="'9:3'", error=outside)]
    assert described == zh(", ").join([zh("temperature {temperature}", temperature="1.5"), zh("no top-k"),
                                       zh("top-p {top_p}", top_p="0.9"), zh("seed {seed}", seed=7)])
