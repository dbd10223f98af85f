"""Synthetic sequence-to-sequence tasks with a known rule: copy, reverse, sort, addition (dates: `dates.py`).

Everything random comes from `random.Random(seed)`; sources are distinct across splits, and the test set is
drawn first, so asking for more training data keeps it fixed.
"""
import random

from attnviz.data.task import N_PROBES, Task
from attnviz.data.tokenizers import CharTokenizer
from attnviz.i18n import _


def _split_sources(name, generate, rng, params):
    """Draw examples with distinct sources: the test set first, then validation, then training."""
    sizes = (params["n_test"], params["n_val"], params["n_train"])
    examples, total, tries = {}, sum(sizes), 0
    while len(examples) < total and tries < 20 * total + 1000:
        src, tgt = generate(rng, params)
        examples.setdefault(src, tgt)
        tries += 1
    if len(examples) < total:
        raise ValueError(_("{name}: only {found} distinct examples turned up but {total} were asked for; ask for "
                           "fewer examples, or allow longer inputs or more characters").format(
            name=name, found=len(examples), total=total))
    pairs = list(examples.items())
    test, val, train = pairs[:sizes[0]], pairs[sizes[0]:sizes[0] + sizes[1]], pairs[sizes[0] + sizes[1]:]
    return train, val, test


def seq2seq_task(generate, alphabet):
    def build(name, seed, params, tokenizer):
        train, val, test = _split_sources(name, generate, random.Random(seed), params)
        tokenizer = tokenizer or CharTokenizer(alphabet(params))
        return Task(name, "seq2seq", seed, params, tokenizer, train, val, test, test[:N_PROBES])
    return build


def _letters(rng, params):
    return "".join(rng.choices(params["alphabet"], k=rng.randint(params["min_len"], params["max_len"])))


def _number(rng, params):
    digits = rng.randint(params["min_len"], params["max_len"])
    return rng.randint(0 if digits == 1 else 10 ** (digits - 1), 10 ** digits - 1)


def copy_letters(rng, params):
    text = _letters(rng, params)
    return text, text


def reverse_letters(rng, params):
    text = _letters(rng, params)
    return text, text[::-1]


def sort_letters(rng, params):
    text = _letters(rng, params)
    return text, "".join(sorted(text))


def addition(rng, params):
    a, b = _number(rng, params), _number(rng, params)
    return f"{a}+{b}", str(a + b)


def alphabet_param(params):
    return params["alphabet"]


def induction_task(name, seed, params, tokenizer):
    """A language model over random strings repeated twice (x_1..x_n x_1..x_n, after a random prefix of 0 to
    `max_prefix` letters, so the repeat starts anywhere): the first half cannot be
    predicted, the second can, by a head that looks up what followed the same token last time (an induction
    head, Olsson et al. 2022). Halves are distinct across splits; the probes are whole test sequences."""
    def generate(rng, params):  # (half, prefix): a random prefix moves where the repeat starts
        prefix_params = {**params, "min_len": 0, "max_len": params["max_prefix"]}
        return _letters(rng, params), _letters(rng, prefix_params) if params["max_prefix"] else ""

    train, val, test = _split_sources(name, generate, random.Random(seed), params)
    tokenizer = tokenizer or CharTokenizer(params["alphabet"])
    train, val, test = ([tuple(tokenizer.encode(prefix + half + half)) for half, prefix in split]
                        for split in (train, val, test))
    return Task(name, "lm", seed, params, tokenizer, train, val, test, test[:N_PROBES])


def repeat_split(block):
    """(prefix length, half length) of an induction sequence prefix + x + x: the longest x that repeats at the end."""
    for half in range(len(block) // 2, 0, -1):
        if block[-2 * half:-half] == block[-half:]:
            return len(block) - 2 * half, half
    raise ValueError("the sequence does not end with a repeat")
