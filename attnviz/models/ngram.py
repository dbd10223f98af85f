"""A smoothed character n-gram language model: the baseline a neural language model has to beat.

Interpolated absolute discounting (Ney, Essen & Kneser, 1994): with c(h, x) the count of character x after the
context h (the n - 1 characters before it), D = 0.75 and N1+(h) the number of distinct characters seen after h,

    P(x | h) = max(c(h, x) - D, 0) / c(h) + D * N1+(h) / c(h) * P(x | h')        h' = h without its first character

down to a uniform distribution over the training alphabet plus one slot for characters never seen. A context never
seen gives its mass to the shorter one. Bits per character = -mean log2 P(x_t | x_{t-n+1} .. x_{t-1}).
"""
import math
from collections import Counter

DISCOUNT = 0.75


class CharNGram:
    def __init__(self, order=5):
        if not isinstance(order, int) or order < 1:
            raise ValueError(f"order={order!r} is not possible: use a whole number of 1 or more")
        self.order = order

    def fit(self, text):
        """Count every n-gram of `text` up to the model's order; returns self."""
        if not text:
            raise ValueError("there is no text to count")
        self.alphabet = set(text)
        self.grams = [Counter(text[i:i + k] for i in range(len(text) - k + 1)) for k in range(1, self.order + 1)]
        self.context_totals, self.continuations = [], []
        for k, grams in enumerate(self.grams, start=1):  # contexts of k - 1 characters
            totals, distinct = Counter(), Counter()
            for gram, count in grams.items():
                totals[gram[:-1]] += count
                distinct[gram[:-1]] += 1
            self.context_totals.append(totals)
            self.continuations.append(distinct)
        return self

    def probability(self, context, char):
        """P(char | the last order - 1 characters of `context`)."""
        p = 1.0 / (len(self.alphabet) + 1)  # uniform, with room for an unseen character
        for k in range(1, self.order + 1):  # from the unigram up to the longest context
            h = context[len(context) - (k - 1):] if k > 1 else ""
            if len(h) < k - 1:
                break
            total = self.context_totals[k - 1].get(h, 0)
            if total == 0:
                break  # a longer context was not seen either
            count = self.grams[k - 1].get(h + char, 0)
            p = max(count - DISCOUNT, 0.0) / total + DISCOUNT * self.continuations[k - 1][h] / total * p
        return p

    def bits_per_char(self, text):
        """Mean -log2 P of every character of `text`, each given the characters before it (within `text`)."""
        if not text:
            raise ValueError("there is no text to score")
        n = self.order - 1
        return -sum(math.log2(self.probability(text[max(0, i - n):i], ch)) for i, ch in enumerate(text)) / len(text)
