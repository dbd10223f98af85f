"""What a language model writes: greedy continuations of fixed prompts, and how many of their words are real.

A word here is a run of letters; it is "real" when the corpus the model learned from contains it. The share of
real words among the generated ones is a blunt but honest check that a model writes words, not letter salad.
"""
import re

from attnviz.decoding import greedy

PROMPTS = {
    "prose": ("The function returns", "If the file does not exist,", "This module provides", "An exception is raised",
              "The default value of"),
    "code": ("def __init__(self", "    for i in range(", "import os\nimport", "class Error(Exception):\n",
             "    if not isinstance("),
}
WORD = re.compile(r"[A-Za-z]+")


def continue_prompt(model, tokenizer, prompt, new_tokens=40):
    """The greedy continuation of `prompt` (the new text only)."""
    ids = [tokenizer.bos_id] + tokenizer.encode(prompt)
    decoded = greedy(model, tokenizer, ids, max_new_tokens=min(new_tokens, model.config.max_len - len(ids)),
                     trace=False)
    return tokenizer.decode(decoded.ids())


def real_word_share(texts, corpus):
    """(share, n): of the words in `texts`, the fraction that occur as words in the `corpus` text, and how many
    words there were. A word cut off at the end of a text is not counted (it may be unfinished)."""
    known = set(WORD.findall(corpus))
    words = [word for text in texts for word in WORD.findall(text.rsplit(" ", 1)[0] if " " in text else "")]
    return (sum(word in known for word in words) / len(words) if words else 0.0), len(words)
