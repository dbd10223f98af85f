"""Chinese number words, checked against readings from a textbook table and an independent parser (words -> int)."""
import random

import pytest

from attnviz.data.chinese_numbers import ALPHABET, MAX_DIGITS, chinese_number
from attnviz.data.tasks import make_task

READINGS = {  # standard Mandarin readings, as a teacher writes them
    0: "零", 5: "五", 10: "十", 11: "十一", 15: "十五", 20: "二十", 99: "九十九", 100: "一百", 101: "一百零一",
    110: "一百一十", 115: "一百一十五", 305: "三百零五", 1000: "一千", 1001: "一千零一", 1005: "一千零五",
    1010: "一千零一十", 1100: "一千一百", 2026: "二千零二十六", 9999: "九千九百九十九", 10000: "一万",
    10001: "一万零一", 10010: "一万零一十", 10100: "一万零一百", 11000: "一万一千", 12345: "一万二千三百四十五",
    20300: "二万零三百", 100000: "十万", 150000: "十五万", 1000000: "一百万", 1010101: "一百零一万零一百零一",
    10000000: "一千万", 99999999: "九千九百九十九万九千九百九十九",
}
DIGITS = {word: value for value, word in enumerate("零一二三四五六七八九")}
UNITS = {"十": 10, "百": 100, "千": 1000}


def parse(words):
    """Words -> int by the reader's rule, written independently of the generator: digits multiply the unit that
    follows (a bare unit counts once), 万 multiplies everything before it, 零 only separates."""
    total, group, digit = 0, 0, 0
    for ch in words:
        if ch in DIGITS:
            digit = DIGITS[ch]
        elif ch in UNITS:
            group += (digit or 1) * UNITS[ch]
            digit = 0
        elif ch == "万":
            total = (group + digit) * 10_000
            group, digit = 0, 0
        else:
            raise ValueError(ch)
    return total + group + digit


def test_textbook_readings():
    assert {n: chinese_number(n) for n in READINGS} == READINGS


def test_every_number_up_to_twenty_thousand_and_a_sample_beyond_reads_back():
    numbers = list(range(20_001)) + random.Random(0).sample(range(10 ** MAX_DIGITS), 20_000)
    for n in numbers:
        words = chinese_number(n)
        assert parse(words) == n, (n, words)
        assert "零零" not in words and not (words.endswith("零") and n)  # one 零 per run of zeros, none at the end


def test_out_of_range_is_refused():
    for bad in (-1, 10 ** MAX_DIGITS, 3.0, True):
        with pytest.raises(ValueError):
            chinese_number(bad)


def test_task_pairs_words_with_digits_and_refuses_more_than_eight_digits():
    task = make_task("zh-numbers", n_train=300, n_val=50, n_test=50)
    for src, tgt in task.train + task.test:
        assert parse(src) == int(tgt) and set(src + tgt) <= set(ALPHABET)
    assert not {src for src, _ in task.train} & {src for src, _ in task.test}
    with pytest.raises(ValueError, match="max_len"):
        make_task("zh-numbers", max_len=9, n_train=10, n_val=5, n_test=5)
