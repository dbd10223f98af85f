"""Chinese number words to digits: "三百零五" -> "305", "二万零三百" -> "20300", so the models read Chinese.

Numbers are written as in standard Mandarin (the reading a teacher would write on the board): digits 零一二…九, units
十 百 千 within a group of four digits, and 万 (ten thousand) between groups. Three rules make the task more than a
lookup, and each is a place where cross-attention has to look somewhere other than straight across:
- one 零 stands for any run of zeros between two non-zero digits (1005 -> 一千零五, 10010 -> 一万零一十);
- a lower group under a thousand after 万 starts with 零 (20300 -> 二万零三百);
- a leading 一十 is said 十 (15 -> 十五, 150000 -> 十五万), but not inside a number (115 -> 一百一十五).
"""
import random
import zlib

from attnviz.checks import reject
from attnviz.data.task import N_PROBES, Task
from attnviz.data.tokenizers import CharTokenizer
from attnviz.i18n import _

DIGIT_WORDS = "零一二三四五六七八九"
UNIT_WORDS = ("", "十", "百", "千")  # tens, hundreds and thousands within a group of four digits
TEN_THOUSAND = "万"
MAX_DIGITS = 8  # up to 九千九百九十九万九千九百九十九: one 万, no 亿 (10^8)
SHORT_WEIGHT = 2000  # see draw_number
ALPHABET = DIGIT_WORDS + "".join(UNIT_WORDS) + TEN_THOUSAND + "0123456789"


def _group_words(n):
    """A group of four digits (1..9999) in words, without the 零 that a group under 1000 takes after 万."""
    words, zeros_pending = "", False
    for position in (3, 2, 1, 0):
        digit = n // 10 ** position % 10
        if digit == 0:
            zeros_pending = bool(words)  # a zero counts only between non-zero digits
        else:
            words += ("零" if zeros_pending else "") + DIGIT_WORDS[digit] + UNIT_WORDS[position]
            zeros_pending = False
    return words


def chinese_number(n):
    """`n` (0 <= n < 10^8) in Chinese number words."""
    if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n < 10 ** MAX_DIGITS:
        raise ValueError(f"{n!r} is not a whole number from 0 to {10 ** MAX_DIGITS - 1}")
    if n == 0:
        return DIGIT_WORDS[0]
    high, low = divmod(n, 10_000)
    words = _group_words(low) if not high else (
        _group_words(high) + TEN_THOUSAND + ("零" if 0 < low < 1000 else "") + (_group_words(low) if low else ""))
    return words[1:] if words.startswith("一十") else words


def draw_number(rng, min_digits, max_digits):
    """A number of `min_digits` to `max_digits` digits. Each digit count is drawn in proportion to how many numbers
    have it, capped at SHORT_WEIGHT: equal odds would send all ten one-digit numbers to the test split (drawn first,
    with distinct sources) and leave none for training, while plain uniform odds would make almost every number long.
    Half the numbers are sparse (each digit after the first kept with odds 1 in 4), because round numbers (一千, 十万,
    二万零三百), where the unit words alone say how many zeros to write, are rare among uniform draws."""
    counts = {d: 10 if d == 1 else 9 * 10 ** (d - 1) for d in range(min_digits, max_digits + 1)}
    digits = rng.choices(list(counts), [min(count, SHORT_WEIGHT) for count in counts.values()])[0]
    n = rng.randint(0 if digits == 1 else 10 ** (digits - 1), 10 ** digits - 1)
    if rng.random() < 0.5:
        text = str(n)
        n = int(text[0] + "".join(d if rng.random() < 0.25 else "0" for d in text[1:]))
    return n


def generate(rng, params):
    """One example: a number of `min_len` to `max_len` digits in words -> its digits."""
    if params["max_len"] > MAX_DIGITS:
        reject("max_len", params["max_len"],
               _("Chinese number words here go up to {digits} digits (no 亿)").format(digits=MAX_DIGITS))
    n = draw_number(rng, params["min_len"], params["max_len"])
    return chinese_number(n), str(n)


def split_of(source):
    """"test", "val" or "train" for a source, fixed by its text: 5%, 5% and 90% of all sources.

    The other synthetic tasks fill the test split first with the first distinct sources drawn; here that would put
    all the few short round numbers (三千, 一万), which sparse draws make common, in the test split and none in
    training, so the split follows a hash of the source instead, and each shape of number lands mostly in training."""
    bucket = zlib.crc32(source.encode("utf-8")) % 100
    return "test" if bucket < 5 else "val" if bucket < 10 else "train"


def task(name, seed, params, tokenizer=None):
    """The zh-numbers task: `n_train`, `n_val` and `n_test` distinct examples, each source in the split `split_of`
    gives it."""
    rng, sizes = random.Random(seed), {"train": params["n_train"], "val": params["n_val"], "test": params["n_test"]}
    splits, seen = {split: [] for split in sizes}, set()
    for _attempt in range(40 * sum(sizes.values()) + 1000):
        if all(len(splits[split]) == size for split, size in sizes.items()):
            break
        src, tgt = generate(rng, params)
        split = split_of(src)
        if src not in seen and len(splits[split]) < sizes[split]:
            seen.add(src)
            splits[split].append((src, tgt))
    else:
        raise ValueError(_("{name}: not enough distinct numbers for {sizes}: allow more digits or ask for "
                           "fewer").format(name=name, sizes=sizes))
    return Task(name, "seq2seq", seed, params, tokenizer or CharTokenizer(ALPHABET), splits["train"], splits["val"],
                splits["test"], splits["test"][:N_PROBES])
