"""Every task by name: `make_task("reverse", seed=0, max_len=16)` and `task_from_spec(task.spec())`.

Synthetic seq2seq problems (`synthetic.py`, `dates.py`) and text corpora (`corpora.py`) behind one table of
names, defaults and parameter bounds. A task's description (TASKS) is English, marked for the catalog: show it as
`_(TASKS[name])` (attnviz.i18n).
"""
import string

from attnviz.checks import reject
from attnviz.data import chinese_numbers, corpora, dates, synthetic
from attnviz.i18n import N_, _


TASKS = {
    "copy": N_("Copy a string of letters: cross-attention runs down the diagonal."),
    "reverse": N_("Reverse a string of letters: cross-attention forms the anti-diagonal."),
    "sort": N_("Sort the letters of a string: attention has to find each letter's place."),
    "addition": N_('Add two whole numbers: "123+45" -> "168" (digits are aligned right to left).'),
    "dates": N_('Rewrite dates in many human formats as ISO: "Mon 23 Nov 2026" -> "2026-11-23".'),
    "zh-numbers": N_('Chinese number words to digits: "三百零五" -> "305", "二万零三百" -> "20300".'),
    "pydoc": N_("Language model over Python's own documentation (pydoc_data.topics, ~465,000 characters)."),
    "prose": N_("Language model over English that ships with Python: the documentation topics and the standard "
                "library's docstrings (~2.2 million characters)."),
    "code": N_("Language model over Python source: the standard library's own modules, tests left out "
               "(~2.5 million characters)."),
    "induction": N_("Random strings said twice: the second half is predictable only by looking back (induction "
                    "heads)."),
    "text": N_("Language model over your own UTF-8 text."),
    "pairs": N_("Sequence-to-sequence over your own TSV file of source<TAB>target lines."),
}
LM_TASKS = ("induction", "pydoc", "prose", "code", "text")  # language models; the rest are sequence-to-sequence
# 200 letters (Latin Extended), so that knowing which letters the first half used predicts little of the second:
# only looking back at what followed each letter does (an induction head).
INDUCTION_ALPHABET = "".join(chr(0x100 + i) for i in range(200))
_SPLIT_SIZES = {"n_train": 6000, "n_val": 500, "n_test": 500}
_LM = {"tokenizer": "bpe", "vocab_size": 512, "block_size": 64, "val_fraction": 0.05, "test_fraction": 0.05}
DEFAULTS = {
    "copy": {"min_len": 8, "max_len": 12, "alphabet": string.ascii_lowercase, **_SPLIT_SIZES},
    "reverse": {"min_len": 8, "max_len": 12, "alphabet": string.ascii_lowercase, **_SPLIT_SIZES},
    "sort": {"min_len": 8, "max_len": 12, "alphabet": string.ascii_lowercase, **_SPLIT_SIZES},
    "addition": {"min_len": 1, "max_len": 3, **_SPLIT_SIZES},  # lengths count the digits of each number
    "dates": {"min_year": 1950, "max_year": 2049, **_SPLIT_SIZES, "n_train": 10000},
    "zh-numbers": {"min_len": 1, "max_len": chinese_numbers.MAX_DIGITS, **_SPLIT_SIZES, "n_train": 20000},
    "induction": {"min_len": 12, "max_len": 20, "max_prefix": 8, "alphabet": INDUCTION_ALPHABET, **_SPLIT_SIZES},
    "pydoc": dict(_LM),
    "prose": {**_LM, "vocab_size": 1024, "block_size": 128},
    "code": {**_LM, "vocab_size": 1024, "block_size": 128},
    "text": {"text": "", **_LM, "tokenizer": "char"},
    "pairs": {"tsv": "", "tokenizer": "char", "vocab_size": 512, "val_fraction": 0.1, "test_fraction": 0.1},
}
MAX_EXAMPLES = 200_000
MAX_LEN = 256


def make_task(name, seed=0, **params):
    """A task by name (see TASKS) with DEFAULTS[name] overridden by `params`."""
    return _build(name, seed, params)


def task_from_spec(spec, tokenizer=None):
    """Rebuild a task from `task.spec()`. Pass the checkpoint's `tokenizer` to reuse it instead of retraining."""
    if not isinstance(spec, dict) or not {"name", "seed", "params"} <= set(spec):
        raise ValueError(_("a task spec is a dict with 'name', 'seed' and 'params'"))
    return _build(spec["name"], spec["seed"], spec["params"], tokenizer)


def _build(name, seed, params, tokenizer=None):
    if name not in TASKS:
        raise ValueError(_("unknown task {name}: choose one of {tasks}").format(name=repr(name),
                                                                                 tasks=", ".join(TASKS)))
    unknown = sorted(set(params) - set(DEFAULTS[name]))
    if unknown:
        raise ValueError(_("task {name} has no parameter {unknown}; its parameters are {parameters}").format(
            name=repr(name), unknown=", ".join(unknown), parameters=", ".join(DEFAULTS[name])))
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(_("seed={seed} is not possible: use a whole number").format(seed=repr(seed)))
    params = {**DEFAULTS[name], **params}
    _validate(params)
    return _BUILDERS[name](name, seed, params, tokenizer)


def _validate(params):
    bounds = {"min_len": (1, MAX_LEN), "max_len": (1, MAX_LEN), "n_train": (1, MAX_EXAMPLES),
              "n_val": (1, MAX_EXAMPLES), "n_test": (1, MAX_EXAMPLES), "block_size": (2, 4096),
              "vocab_size": (5, 65536), "min_year": (1, 9999), "max_year": (1, 9999),
              "max_prefix": (0, MAX_LEN)}
    for key, (low, high) in bounds.items():
        value = params.get(key, low)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            reject(key, value, _("use a whole number from {low} to {high}").format(low=low, high=high))
    for low, high in (("min_len", "max_len"), ("min_year", "max_year")):
        if params.get(low, 0) > params.get(high, 0):
            reject(high, params[high], _("it must be at least {low}={value}").format(low=low, value=params[low]))
    for key in ("val_fraction", "test_fraction"):
        if key in params and not (isinstance(params[key], (int, float)) and 0 < params[key] <= 0.4):
            reject(key, params[key], _("use a fraction above 0 and at most 0.4"))
    if params.get("tokenizer", "char") not in ("char", "bpe", "unigram"):
        reject("tokenizer", params["tokenizer"], _("choose char, bpe or unigram"))
    if "alphabet" in params:
        alphabet = params["alphabet"]
        if not isinstance(alphabet, str) or not alphabet or len(set(alphabet)) != len(alphabet):
            reject("alphabet", alphabet, _("give a non-empty string of distinct characters"))


_BUILDERS = {
    "copy": synthetic.seq2seq_task(synthetic.copy_letters, synthetic.alphabet_param),
    "reverse": synthetic.seq2seq_task(synthetic.reverse_letters, synthetic.alphabet_param),
    "sort": synthetic.seq2seq_task(synthetic.sort_letters, synthetic.alphabet_param),
    "addition": synthetic.seq2seq_task(synthetic.addition, lambda params: "0123456789+"),
    "dates": synthetic.seq2seq_task(dates.generate, lambda params: dates.alphabet()),
    "zh-numbers": chinese_numbers.task,
    "induction": synthetic.induction_task,
    "pydoc": corpora.pydoc_task,
    "prose": corpora.prose_task,
    "code": corpora.code_task,
    "text": corpora.text_task,
    "pairs": corpora.pairs_task,
}
