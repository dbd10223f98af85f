"""The character n-gram baseline: a proper distribution, the formula by hand, and it learns what repeats."""
import math

import pytest

from attnviz.models.ngram import DISCOUNT, CharNGram


def test_probabilities_sum_to_one_over_the_alphabet_and_the_unseen_slot():
    model = CharNGram(3).fit("abracadabra, abracadabra")
    for context in ["", "a", "ab", "zz", "ra"]:
        unseen = model.probability(context, "\0")  # any character not in the training text
        assert sum(model.probability(context, c) for c in model.alphabet) + unseen == pytest.approx(1.0)


def test_bigram_formula_by_hand():
    model = CharNGram(2).fit("aab")
    # unigram: c(a)=2, c(b)=1, total 3, 2 distinct; uniform over {a, b} + unseen = 1/3
    uni_a = (2 - DISCOUNT) / 3 + DISCOUNT * 2 / 3 * (1 / 3)
    # after "a": c(a,a)=1, c(a,b)=1, total 2, 2 distinct
    assert model.probability("a", "a") == pytest.approx((1 - DISCOUNT) / 2 + DISCOUNT * 2 / 2 * uni_a)
    # after "b" nothing was seen: the unigram
    assert model.probability("b", "a") == pytest.approx(uni_a)


def test_repetitive_text_costs_few_bits_and_random_text_many():
    model = CharNGram(5).fit("the cat sat on the mat. " * 50)
    assert model.bits_per_char("the cat sat on the mat. ") < 0.5
    assert model.bits_per_char("qzxj wkv") > math.log2(10)


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError):
        CharNGram(0)
    with pytest.raises(ValueError):
        CharNGram(2).fit("")
