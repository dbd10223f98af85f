"""Tasks: synthetic seq2seq problems and text corpora, deterministic splits, batches with padding.

A task keeps its examples as plain data (seq2seq: (source, target) strings; lm: tuples of token ids, one
fixed-length block each) and turns them into `Batch`es of right-padded token tensors. Everything random
comes from `random.Random(seed)`, so `task.spec()` (name, seed, params) rebuilds the identical task.
No source (no LM block) is in two splits. Synthetic tasks draw the test set first, so asking for more
training data keeps it fixed.
"""
import datetime
import functools
import random
import string
from dataclasses import dataclass

import torch

from attnviz.tokenizers import BOS, EOS, PAD, CharTokenizer, SentencePieceTokenizer

TASKS = {
    "copy": "Copy a string of letters: cross-attention runs down the diagonal.",
    "reverse": "Reverse a string of letters: cross-attention forms the anti-diagonal.",
    "sort": "Sort the letters of a string: attention has to find each letter's place.",
    "addition": 'Add two whole numbers: "123+45" -> "168" (digits are aligned right to left).',
    "dates": 'Rewrite dates in many human formats as ISO: "Mon 23 Nov 2026" -> "2026-11-23".',
    "pydoc": "Language model over Python's own documentation (pydoc_data.topics, ~465,000 characters).",
    "text": "Language model over your own UTF-8 text.",
    "pairs": "Sequence-to-sequence over your own TSV file of source<TAB>target lines.",
}
_SPLIT_SIZES = {"n_train": 6000, "n_val": 500, "n_test": 500}
_LM = {"tokenizer": "bpe", "vocab_size": 512, "block_size": 64, "val_fraction": 0.05, "test_fraction": 0.05}
DEFAULTS = {
    "copy": {"min_len": 8, "max_len": 12, "alphabet": string.ascii_lowercase, **_SPLIT_SIZES},
    "reverse": {"min_len": 8, "max_len": 12, "alphabet": string.ascii_lowercase, **_SPLIT_SIZES},
    "sort": {"min_len": 8, "max_len": 12, "alphabet": string.ascii_lowercase, **_SPLIT_SIZES},
    "addition": {"min_len": 1, "max_len": 3, **_SPLIT_SIZES},  # lengths count the digits of each number
    "dates": {"min_year": 1950, "max_year": 2049, **_SPLIT_SIZES, "n_train": 10000},
    "pydoc": dict(_LM),
    "text": {"text": "", **_LM, "tokenizer": "char"},
    "pairs": {"tsv": "", "tokenizer": "char", "vocab_size": 512, "val_fraction": 0.1, "test_fraction": 0.1},
}
MAX_USER_BYTES = 5_000_000  # user text and TSV files, which the task spec (and so a checkpoint) stores inline
MAX_TEXT_LINE_CHARS = 10_000
MAX_PAIR_LINE_CHARS = 1_000
MAX_INPUT_TOKENS = 128  # default cap for encode_source (TransformerConfig's default max_len)
MAX_EXAMPLES = 200_000
MAX_LEN = 256
N_PROBES = 4


@dataclass
class Batch:
    """Token tensors for one step. Masks follow from PAD: `src == PAD` is the source padding mask."""

    src: torch.Tensor | None  # (B, S) source tokens + EOS, then PAD; None for a language model
    tgt_in: torch.Tensor  # (B, T) BOS + target (decoder input)
    tgt_out: torch.Tensor  # (B, T) target + EOS, then PAD (what to predict; the loss ignores PAD)

    def to(self, device):
        src = None if self.src is None else self.src.to(device)
        return Batch(src, self.tgt_in.to(device), self.tgt_out.to(device))

    @property
    def n_tokens(self):
        """Number of target positions that count in the loss."""
        return int((self.tgt_out != PAD).sum())


def _pad(rows):
    width = max(len(row) for row in rows)
    return torch.tensor([row + [PAD] * (width - len(row)) for row in rows], dtype=torch.long)  # (B, width)


class Task:
    """Examples split into train/val/test, the tokenizer for them, and batching."""

    def __init__(self, name, kind, seed, params, tokenizer, train, val, test, probes):
        self.name, self.kind, self.seed, self.params = name, kind, seed, params
        self.tokenizer, self.train, self.val, self.test, self.probes = tokenizer, train, val, test, probes

    @property
    def description(self):
        return TASKS[self.name]

    def spec(self):
        """JSON-able; `task_from_spec(task.spec())` rebuilds this task (user text is stored inline)."""
        return {"name": self.name, "seed": self.seed, "params": dict(self.params)}

    def examples(self, split):
        if split not in ("train", "val", "test"):
            raise ValueError(f"unknown split {split!r}: use 'train', 'val' or 'test'")
        return getattr(self, split)

    @functools.cached_property
    def max_src_len(self):
        """Widest `src` of any batch (source tokens + EOS); 0 for a language model."""
        if self.kind == "lm":
            return 0
        return 1 + max(len(self.tokenizer.encode(src)) for src, _ in self.train + self.val + self.test)

    @functools.cached_property
    def max_tgt_len(self):
        """Widest `tgt_in`/`tgt_out` of any batch (BOS + target tokens, or a block for a language model)."""
        if self.kind == "lm":
            return self.params["block_size"]
        return 1 + max(len(self.tokenizer.encode(tgt)) for _, tgt in self.train + self.val + self.test)

    def collate(self, examples):
        """A Batch from a list of examples (e.g. `task.probes`)."""
        if self.kind == "lm":
            return Batch(None, _pad([[BOS, *block[:-1]] for block in examples]), _pad([[*block] for block in examples]))
        pairs = [(self.tokenizer.encode(src), self.tokenizer.encode(tgt)) for src, tgt in examples]
        return Batch(_pad([src + [EOS] for src, _ in pairs]), _pad([[BOS] + tgt for _, tgt in pairs]),
                     _pad([tgt + [EOS] for _, tgt in pairs]))

    def batches(self, split, batch_size, seed=0):
        """Train: endless, reshuffled every epoch by `seed`. Val/test: one pass in order."""
        examples = self.examples(split)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r} is not possible: use a whole number of 1 or more")
        if split == "train":
            return self._shuffled_batches(examples, batch_size, seed)
        return (self.collate(examples[i:i + batch_size]) for i in range(0, len(examples), batch_size))

    def _shuffled_batches(self, examples, batch_size, seed):
        rng, order = random.Random(seed), list(range(len(examples)))
        while True:
            rng.shuffle(order)
            for i in range(0, len(order), batch_size):
                yield self.collate([examples[j] for j in order[i:i + batch_size]])

    def unknown_characters(self, text):
        """Characters of a user's input that the tokenizer can only read as UNK (so a UI can warn)."""
        return self.tokenizer.unknown_characters(text)

    def encode_source(self, text, max_len=None):
        """A user's input as a (1, S) LongTensor: seq2seq tokens + EOS; lm BOS + tokens (may be just BOS).

        `max_len` caps S (pass the model's `config.max_len`); the default is MAX_INPUT_TOKENS."""
        max_len = max_len or MAX_INPUT_TOKENS
        ids = self.tokenizer.encode(text)
        unit = "characters" if isinstance(self.tokenizer, CharTokenizer) else "tokens"
        if not ids and self.kind == "seq2seq":
            raise ValueError("the input is empty: type something to transform")
        if len(ids) + 1 > max_len:
            raise ValueError(f"the input is {len(ids)} {unit} long; the most this model takes is {max_len - 1}")
        return torch.tensor([ids + [EOS] if self.kind == "seq2seq" else [BOS] + ids], dtype=torch.long)  # (1, S)


# ---------------------------------------------------------------- building tasks from a name or a spec

def make_task(name, seed=0, **params):
    """A task by name (see TASKS) with DEFAULTS[name] overridden by `params`."""
    return _build(name, seed, params)


def task_from_spec(spec, tokenizer=None):
    """Rebuild a task from `task.spec()`. Pass the checkpoint's `tokenizer` to reuse it instead of retraining."""
    if not isinstance(spec, dict) or not {"name", "seed", "params"} <= set(spec):
        raise ValueError("a task spec is a dict with 'name', 'seed' and 'params'")
    return _build(spec["name"], spec["seed"], spec["params"], tokenizer)


def _build(name, seed, params, tokenizer=None):
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}: choose one of {', '.join(TASKS)}")
    unknown = sorted(set(params) - set(DEFAULTS[name]))
    if unknown:
        raise ValueError(f"task {name!r} has no parameter {', '.join(unknown)}; its parameters are "
                         f"{', '.join(DEFAULTS[name])}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"seed={seed!r} is not possible: use a whole number")
    params = {**DEFAULTS[name], **params}
    _validate(params)
    return _BUILDERS[name](name, seed, params, tokenizer)


def _reject(key, value, fix):
    raise ValueError(f"{key}={value!r} is not possible: {fix}")


def _validate(params):
    bounds = {"min_len": (1, MAX_LEN), "max_len": (1, MAX_LEN), "n_train": (1, MAX_EXAMPLES),
              "n_val": (1, MAX_EXAMPLES), "n_test": (1, MAX_EXAMPLES), "block_size": (2, 4096),
              "vocab_size": (5, 65536), "min_year": (1, 9999), "max_year": (1, 9999)}
    for key, (low, high) in bounds.items():
        value = params.get(key, low)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            _reject(key, value, f"use a whole number from {low} to {high}")
    for low, high in (("min_len", "max_len"), ("min_year", "max_year")):
        if params.get(low, 0) > params.get(high, 0):
            _reject(high, params[high], f"it must be at least {low}={params[low]}")
    for key in ("val_fraction", "test_fraction"):
        if key in params and not (isinstance(params[key], (int, float)) and 0 < params[key] <= 0.4):
            _reject(key, params[key], "use a fraction above 0 and at most 0.4")
    if params.get("tokenizer", "char") not in ("char", "bpe", "unigram"):
        _reject("tokenizer", params["tokenizer"], "choose char, bpe or unigram")
    if "alphabet" in params:
        alphabet = params["alphabet"]
        if not isinstance(alphabet, str) or not alphabet or len(set(alphabet)) != len(alphabet):
            _reject("alphabet", alphabet, "give a non-empty string of distinct characters")


def _split_sources(name, generate, rng, params):
    """Draw examples with distinct sources: the test set first, then validation, then training."""
    sizes = (params["n_test"], params["n_val"], params["n_train"])
    examples, total, tries = {}, sum(sizes), 0
    while len(examples) < total and tries < 20 * total + 1000:
        src, tgt = generate(rng, params)
        examples.setdefault(src, tgt)
        tries += 1
    if len(examples) < total:
        raise ValueError(f"{name}: only {len(examples)} distinct examples turned up but {total} were asked for; "
                         "ask for fewer examples, or allow longer inputs or more characters")
    pairs = list(examples.items())
    test, val, train = pairs[:sizes[0]], pairs[sizes[0]:sizes[0] + sizes[1]], pairs[sizes[0] + sizes[1]:]
    return train, val, test


def _seq2seq_task(generate, alphabet):
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


def _copy(rng, params):
    text = _letters(rng, params)
    return text, text


def _reverse(rng, params):
    text = _letters(rng, params)
    return text, text[::-1]


def _sort(rng, params):
    text = _letters(rng, params)
    return text, "".join(sorted(text))


def _addition(rng, params):
    a, b = _number(rng, params), _number(rng, params)
    return f"{a}+{b}", str(a + b)


# ---------------------------------------------------------------- dates

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
DATE_FORMATS = (
    "{d} {mon} {yyyy}",  # 23 Nov 2026
    "{d} {MON} {yyyy}",  # 23 NOV 2026
    "{d} {month} {yyyy}",  # 23 November 2026
    "{month} {d}, {yyyy}",  # November 23, 2026
    "{mon} {d}, {yyyy}",  # Nov 23, 2026
    "{mon} {d} {yyyy}",  # Nov 23 2026
    "{d}{th} {month} {yyyy}",  # 23rd November 2026
    "{month} {d}{th}, {yyyy}",  # November 23rd, 2026
    "{wd} {d} {month} {yyyy}",  # Mon 23 November 2026
    "{wd}, {d} {mon} {yyyy}",  # Mon, 23 Nov 2026
    "{weekday}, {month} {d}, {yyyy}",  # Monday, November 23, 2026
    "{weekday} {d} {month} {yyyy}",  # Monday 23 November 2026
    "{dd}/{mm}/{yyyy}",  # 23/11/2026 (day first)
    "{d}/{m}/{yyyy}",  # 3/4/2026
    "{dd}.{mm}.{yyyy}",  # 23.11.2026
    "{dd}.{mm}.{yy}",  # 23.11.26 (only when the years span less than a century)
    "{dd}-{mon}-{yyyy}",  # 23-Nov-2026
    "{yyyy}/{mm}/{dd}",  # 2026/11/23
    "{yyyy}-{mm}-{dd}",  # 2026-11-23 (already ISO)
)


def _ordinal_suffix(day):
    return "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")


def format_date(date, fmt):
    """`date` written in one of DATE_FORMATS (English names, independent of the locale)."""
    month, weekday = MONTHS[date.month - 1], WEEKDAYS[date.weekday()]
    return fmt.format(d=date.day, dd=f"{date.day:02d}", m=date.month, mm=f"{date.month:02d}",
                      yyyy=f"{date.year:04d}", yy=f"{date.year % 100:02d}", month=month, mon=month[:3],
                      MON=month[:3].upper(), weekday=weekday, wd=weekday[:3], th=_ordinal_suffix(date.day))


def _date_formats(params):
    short_years_ok = params["max_year"] - params["min_year"] < 100
    return [fmt for fmt in DATE_FORMATS if short_years_ok or "{yy}" not in fmt]


def _dates(rng, params):
    first, last = datetime.date(params["min_year"], 1, 1), datetime.date(params["max_year"], 12, 31)
    date = datetime.date.fromordinal(rng.randint(first.toordinal(), last.toordinal()))
    return format_date(date, rng.choice(_date_formats(params))), date.isoformat()


@functools.cache
def _date_alphabet():
    """Every character any format can produce: all formats over every day of a leap year, plus digits."""
    days = [datetime.date(2000, 1, 1) + datetime.timedelta(days=i) for i in range(366)]
    text = "".join(format_date(day, fmt) for day in days for fmt in DATE_FORMATS)
    return "".join(sorted(set(text + string.digits)))


# ---------------------------------------------------------------- language models and user files

def _pydoc_text():
    from pydoc_data.topics import topics
    return "\n\n".join(topics[key] for key in sorted(topics))


def _make_tokenizer(params, texts):
    if params["tokenizer"] == "char":
        return CharTokenizer("".join(sorted(set("".join(texts)))))
    paragraphs = [p for text in texts for p in text.split("\n\n")]
    return SentencePieceTokenizer.train(paragraphs, params["vocab_size"], params["tokenizer"])


def _split_by_key(items, key, seed, params, what):
    """(train, val, test) such that equal keys share a split: distinct keys are shuffled by `seed`, then the
    first ones go to test, the next to validation and the rest to training (repeats included)."""
    keys = list(dict.fromkeys(map(key, items)))
    if len(keys) < 3:
        raise ValueError(f"there are only {len(keys)} {what}; at least 3 are needed (training, validation, test)")
    random.Random(seed).shuffle(keys)
    n_test = max(1, round(len(keys) * params["test_fraction"]))
    n_val = min(max(1, round(len(keys) * params["val_fraction"])), len(keys) - n_test - 1)
    split_of = {k: 2 if i < n_test else 1 if i < n_test + n_val else 0 for i, k in enumerate(keys)}
    splits = ([], [], [])
    for item in items:
        splits[split_of[key(item)]].append(item)
    return splits


def _lm_task(name, seed, params, tokenizer, text):
    tokenizer = tokenizer or _make_tokenizer(params, [text])
    ids, size = tokenizer.encode(text), params["block_size"]
    blocks = [tuple(ids[i:i + size]) for i in range(0, len(ids), size)]
    blocks = [block for block in blocks if len(block) >= 2]  # a 1-token block has nothing to predict
    # A block that repeats (the docs repeat some tables; a toy text repeats itself) stays in one split.
    train, val, test = _split_by_key(blocks, lambda block: block, seed, params,
                                     f"different blocks of {size} tokens in the text (add text or lower block_size)")
    probes = [block[:32] for block in test[:N_PROBES]]
    return Task(name, "lm", seed, params, tokenizer, train, val, test, probes)


def _pydoc(name, seed, params, tokenizer):
    return _lm_task(name, seed, params, tokenizer, _pydoc_text())


def read_user_text(data, what="file"):
    """A user's upload (bytes or str) as text: UTF-8, at most MAX_USER_BYTES, not empty; CRLF becomes LF."""
    if isinstance(data, str):
        try:
            data = data.encode("utf-8")
        except UnicodeEncodeError as error:
            line = data.count("\n", 0, error.start) + 1
            raise ValueError(f"line {line} of the {what} has an invalid character (a lone surrogate)") from None
    if not isinstance(data, bytes):
        raise ValueError(f"the {what} must be text or bytes, not {type(data).__name__}")
    if len(data) > MAX_USER_BYTES:
        raise ValueError(f"the {what} is {len(data):,} bytes; the most allowed is {MAX_USER_BYTES:,} bytes (5 MB)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ValueError(f"line {line} of the {what} is not UTF-8 text (byte {error.start} of the file is "
                         f"0x{data[error.start]:02x}); save it with UTF-8 encoding") from None
    text = text.removeprefix("\ufeff").replace("\r\n", "\n")
    if not text.strip():
        raise ValueError(f"the {what} is empty")
    return text


def _check_line_lengths(text, limit, what):
    for number, line in enumerate(text.split("\n"), start=1):
        if len(line) > limit:
            raise ValueError(f"line {number} of the {what} has {len(line):,} characters; the most allowed is {limit:,}")


def _text(name, seed, params, tokenizer):
    text = read_user_text(params["text"], "text")
    _check_line_lengths(text, MAX_TEXT_LINE_CHARS, "text")
    return _lm_task(name, seed, {**params, "text": text}, tokenizer, text)


def parse_tsv(data):
    """[(source, target)] from TSV text or bytes, one pair per line; blank lines are skipped."""
    text = read_user_text(data, "TSV file")
    _check_line_lengths(text, MAX_PAIR_LINE_CHARS, "TSV file")
    pairs = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        columns = line.split("\t")
        if len(columns) != 2:
            raise ValueError(f"line {number} of the TSV file has {len(columns)} tab-separated columns; "
                             "every line needs exactly 2: source<TAB>target")
        for column, part in zip(columns, ("source", "target")):
            if not column:
                raise ValueError(f"line {number} of the TSV file has an empty {part}")
        pairs.append(tuple(columns))
    return text, pairs


def _pairs(name, seed, params, tokenizer):
    text, pairs = parse_tsv(params["tsv"])
    train, val, test = _split_by_key(list(dict.fromkeys(pairs)), lambda pair: pair[0], seed, params,  # no repeats
                                     "distinct sources in the TSV file")
    tokenizer = tokenizer or _make_tokenizer(params, [src for src, _ in pairs] + [tgt for _, tgt in pairs])
    return Task(name, "seq2seq", seed, {**params, "tsv": text}, tokenizer, train, val, test, test[:N_PROBES])


def _alphabet_param(params):
    return params["alphabet"]


_BUILDERS = {
    "copy": _seq2seq_task(_copy, _alphabet_param),
    "reverse": _seq2seq_task(_reverse, _alphabet_param),
    "sort": _seq2seq_task(_sort, _alphabet_param),
    "addition": _seq2seq_task(_addition, lambda params: "0123456789+"),
    "dates": _seq2seq_task(_dates, lambda params: _date_alphabet()),
    "pydoc": _pydoc,
    "text": _text,
    "pairs": _pairs,
}
