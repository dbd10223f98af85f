import datetime
import itertools
import json
import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attnviz.data.corpora import MAX_USER_BYTES, parse_tsv
from attnviz.data.synthetic import repeat_split
from attnviz.data.tasks import DEFAULTS, TASKS, make_task, task_from_spec
from attnviz.data.tokenizers import BOS, EOS, PAD, UNK, CharTokenizer, SentencePieceTokenizer

SYNTHETIC = ["copy", "reverse", "sort", "addition", "dates"]
SMALL = {"n_train": 300, "n_val": 50, "n_test": 50}
STORY = "".join(f"Line {i}: the quick brown fox jumps over the lazy dog, {i * 7} times.\n" for i in range(60))
TSV = "".join(f"{word}\t{word.upper()}\n" for word in ["cat", "dog", "bird", "fish", "cow", "ant", "bee", "owl"])


@pytest.fixture(scope="module")
def pydoc():
    return make_task("pydoc")


@pytest.fixture(scope="module")
def dates():
    return make_task("dates", n_train=100, n_val=10, n_test=10)


def small(name, seed=0, **params):
    return make_task(name, seed, **{**SMALL, **params})


def sources(examples):
    return {src for src, _ in examples}


# ---------------------------------------------------------------- names, defaults, determinism, splits

def test_every_task_has_a_description_and_defaults():
    assert set(TASKS) == set(DEFAULTS) == {"copy", "reverse", "sort", "addition", "dates", "zh-numbers", "induction", "pydoc",
                                           "prose", "code", "text", "pairs"}
    assert all(isinstance(text, str) and text for text in TASKS.values())
    task = make_task("reverse")
    assert (task.params["min_len"], task.params["max_len"]) == (8, 12)
    assert (len(task.train), len(task.val), len(task.test)) == (6000, 500, 500)


@pytest.mark.parametrize("name", SYNTHETIC)
def test_same_seed_same_task_other_seed_other_task(name):
    a, b, c = small(name, seed=1), small(name, seed=1), small(name, seed=2)
    assert (a.train, a.val, a.test) == (b.train, b.val, b.test)
    assert a.train != c.train and a.test != c.test


@pytest.mark.parametrize("name", SYNTHETIC)
def test_splits_have_the_asked_sizes_and_share_no_source(name):
    task = small(name)
    assert (len(task.train), len(task.val), len(task.test)) == (300, 50, 50)
    train, val, test = sources(task.train), sources(task.val), sources(task.test)
    assert len(train) == 300 and len(val) == 50 and len(test) == 50
    assert not train & test and not train & val and not val & test


def test_test_set_does_not_depend_on_training_size():
    assert small("reverse", n_train=100).test == small("reverse", n_train=1000).test


def test_too_few_possible_examples_is_a_clear_error():
    with pytest.raises(ValueError, match="distinct examples"):
        make_task("copy", min_len=1, max_len=1, alphabet="ab", n_train=5, n_val=1, n_test=1)


@pytest.mark.parametrize("params, match", [
    ({"min_len": 5, "max_len": 3}, "max_len=3 is not possible"),
    ({"min_len": 0}, "min_len=0"),
    ({"n_train": 2.5}, "n_train=2.5"),
    ({"alphabet": "aa"}, "alphabet"),
    ({"colour": "red"}, "no parameter colour"),
])
def test_bad_parameters_are_refused(params, match):
    with pytest.raises(ValueError, match=match):
        make_task("reverse", **params)


def test_unknown_task_and_bad_seed():
    with pytest.raises(ValueError, match="unknown task 'translate'"):
        make_task("translate")
    with pytest.raises(ValueError, match="seed"):
        make_task("copy", seed="zero")


# ---------------------------------------------------------------- the targets are right

def check_letters(task, src):
    assert task.params["min_len"] <= len(src) <= task.params["max_len"]
    assert set(src) <= set(task.params["alphabet"])


def all_examples(task):
    return task.train + task.val + task.test


def test_copy_reverse_sort_targets():
    references = {"copy": lambda s: s, "reverse": lambda s: s[::-1], "sort": lambda s: "".join(sorted(s))}
    for name, expected in references.items():
        task = small(name, min_len=3, max_len=6, alphabet="pqrstu")
        for src, tgt in all_examples(task):
            check_letters(task, src)
            assert tgt == expected(src)
        assert {len(src) for src, _ in task.train} == {3, 4, 5, 6}


def test_addition_targets():
    task = small("addition", min_len=2, max_len=4)
    for src, tgt in all_examples(task):
        a, b = src.split("+")
        assert all(2 <= len(n) <= 4 and (n == "0" or not n.startswith("0")) for n in (a, b))
        assert int(tgt) == int(a) + int(b)


STRPTIME_FORMATS = ["%d %b %Y", "%d %B %Y", "%B %d, %Y", "%b %d, %Y", "%b %d %Y", "%a %d %B %Y", "%a, %d %b %Y",
                    "%A, %B %d, %Y", "%A %d %B %Y", "%d/%m/%Y", "%d.%m.%Y", "%d.%m.%y", "%d-%b-%Y", "%Y/%m/%d",
                    "%Y-%m-%d"]


def parse_date(src, min_year, max_year):
    """(date, format) by the standard library; two-digit years go to the one year in range that ends so."""
    text = re.sub(r"(\d)(st|nd|rd|th)\b", r"\1", src)
    for fmt in STRPTIME_FORMATS:
        try:
            date = datetime.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
        if "%y" in fmt:
            date = date.replace(year=next(y for y in range(min_year, max_year + 1) if y % 100 == date.year % 100))
        return date, fmt
    raise AssertionError(f"the standard library cannot read {src!r}")


def test_dates_targets_parse_back_and_weekdays_are_right():
    task = small("dates", min_year=1990, max_year=2030, n_train=2000)
    formats = set()
    for src, tgt in all_examples(task):
        date, fmt = parse_date(src, 1990, 2030)
        formats.add(fmt)
        assert tgt == date.isoformat() == datetime.date.fromisoformat(tgt).isoformat()
        assert 1990 <= date.year <= 2030
        for word in re.findall(r"[A-Za-z]+", src):
            if word in ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"):
                assert word == date.strftime("%A")
            if word in ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"):
                assert word == date.strftime("%a")
        if re.search(r"\d(st|nd|rd|th)\b", src):
            suffix = {1: "st", 2: "nd", 3: "rd", 21: "st", 22: "nd", 23: "rd", 31: "st"}.get(date.day, "th")
            assert re.search(rf"\b{date.day}{suffix}\b", src)
    assert len(formats) >= 14  # many human formats, not a handful


def test_dates_with_a_wide_year_range_avoid_two_digit_years():
    task = small("dates", min_year=1800, max_year=2100, n_train=1000)
    for src, _ in all_examples(task):
        assert not re.fullmatch(r"\d\d\.\d\d\.\d\d", src)


def test_dates_alphabet_covers_every_example():
    task = small("dates")
    assert not any(task.unknown_characters(src + tgt) for src, tgt in all_examples(task))


# ---------------------------------------------------------------- batching

def test_seq2seq_batch_layout():
    task = small("reverse", min_len=2, max_len=6)
    examples = task.train[:5]
    batch = task.collate(examples)
    assert batch.src.dtype == batch.tgt_in.dtype == batch.tgt_out.dtype == torch.long
    lengths = [len(src) for src, _ in examples]
    width = max(lengths) + 1
    assert batch.src.shape == batch.tgt_in.shape == batch.tgt_out.shape == (5, width)
    for row, (src, tgt) in enumerate(examples):
        n = len(src)
        assert batch.src[row, :n].tolist() == task.tokenizer.encode(src) and batch.src[row, n] == EOS
        assert batch.tgt_in[row, 0] == BOS and batch.tgt_in[row, 1:n + 1].tolist() == task.tokenizer.encode(tgt)
        assert batch.tgt_out[row, :n].tolist() == task.tokenizer.encode(tgt) and batch.tgt_out[row, n] == EOS
        for tensor in (batch.src, batch.tgt_in, batch.tgt_out):
            assert (tensor[row, n + 1:] == PAD).all() and (tensor[row, :n + 1] != PAD).all()
    mask = batch.src == PAD  # the key padding mask the model derives
    assert mask.sum(dim=1).tolist() == [max(lengths) - n for n in lengths]
    assert batch.n_tokens == sum(n + 1 for n in lengths)
    assert batch.to("cpu").src.equal(batch.src)


def test_train_batches_are_endless_reshuffled_epochs():
    task = small("copy", n_train=10)
    batches = task.batches("train", batch_size=4, seed=3)
    epochs = [[src for batch in itertools.islice(batches, 3) for src in
               (task.tokenizer.decode(row) for row in batch.src)] for _ in range(4)]
    for epoch in epochs:
        assert sorted(epoch) == sorted(sources(task.train))
    assert len({tuple(epoch) for epoch in epochs}) > 1
    again = task.batches("train", batch_size=4, seed=3)
    assert all(next(again).src.equal(b.src) for b in itertools.islice(task.batches("train", 4, seed=3), 7))
    other = next(task.batches("train", batch_size=4, seed=4))
    assert not other.src.equal(next(task.batches("train", batch_size=4, seed=3)).src)


def test_val_and_test_batches_are_one_pass_in_order():
    task = small("sort")
    batches = list(task.batches("val", batch_size=16))
    assert [len(b.src) for b in batches] == [16, 16, 16, 2]
    decoded = [task.tokenizer.decode(row) for b in batches for row in b.tgt_out]
    assert decoded == [tgt for _, tgt in task.val]
    with pytest.raises(ValueError, match="unknown split"):
        task.batches("dev", 4)
    with pytest.raises(ValueError, match="batch_size"):
        task.batches("val", 0)


@pytest.mark.parametrize("name", SYNTHETIC)
def test_max_lengths_are_the_widest_batches(name):
    task = small(name)
    batches = [task.collate(task.train), *task.batches("val", 512), *task.batches("test", 512)]
    widths = [(b.src.shape[1], b.tgt_in.shape[1]) for b in batches]
    assert task.max_src_len == max(w[0] for w in widths)
    assert task.max_tgt_len == max(w[1] for w in widths)


def test_probes_are_fixed_test_examples():
    task = small("dates")
    assert task.probes == task.test[:len(task.probes)] and 1 <= len(task.probes) <= 8
    assert task.collate(task.probes).src.shape[0] == len(task.probes)


# ---------------------------------------------------------------- language models

def check_blocks(task, text, size):
    """The blocks are the text's tokens cut every `size` tokens, repeats included, and no block is in two splits."""
    ids = task.tokenizer.encode(text)
    slices = [tuple(ids[i:i + size]) for i in range(0, len(ids), size)]
    assert sorted(task.train + task.val + task.test) == sorted(s for s in slices if len(s) >= 2)
    train, val, test = set(task.train), set(task.val), set(task.test)
    assert not train & test and not train & val and not val & test


def test_pydoc_blocks_cover_the_corpus(pydoc):
    from pydoc_data.topics import topics
    assert pydoc.kind == "lm" and isinstance(pydoc.tokenizer, SentencePieceTokenizer)
    assert pydoc.tokenizer.vocab_size <= 512
    check_blocks(pydoc, "\n\n".join(topics[k] for k in sorted(topics)), 64)
    n_distinct = len(set(pydoc.train + pydoc.val + pydoc.test))
    assert len(set(pydoc.test)) == len(set(pydoc.val)) == round(n_distinct * 0.05)


def test_lm_batch_is_shifted_by_one(pydoc):
    batch = next(pydoc.batches("train", batch_size=8, seed=0))
    assert batch.src is None and batch.tgt_in.shape == batch.tgt_out.shape == (8, 64)
    assert (batch.tgt_in[:, 0] == BOS).all()
    assert batch.tgt_in[:, 1:].equal(batch.tgt_out[:, :-1])
    assert pydoc.max_src_len == 0 and pydoc.max_tgt_len == 64


def test_lm_probes_and_short_blocks_pad(pydoc):
    batch = pydoc.collate([pydoc.test[0][:5], pydoc.test[1][:3]])
    assert batch.tgt_out[1, 3:].tolist() == [PAD, PAD] and batch.tgt_in[1, 3:].tolist() == [PAD, PAD]
    assert pydoc.collate(pydoc.probes).tgt_in.shape[0] == len(pydoc.probes) >= 1


def test_pydoc_with_characters():
    task = make_task("pydoc", tokenizer="char", block_size=128)
    assert isinstance(task.tokenizer, CharTokenizer)
    assert all(UNK not in block for block in task.train)


@pytest.mark.parametrize("tokenizer", ["char", "bpe", "unigram"])
def test_text_task_from_bytes_and_str(tokenizer):
    from_str = make_task("text", text=STORY, tokenizer=tokenizer, vocab_size=400, block_size=32)
    from_bytes = make_task("text", text=STORY.encode(), tokenizer=tokenizer, vocab_size=400, block_size=32)
    assert from_str.train == from_bytes.train and from_str.spec() == from_bytes.spec()
    check_blocks(from_str, STORY, 32)


def test_text_bom_and_crlf_are_normalised():
    task = make_task("text", text=b"\xef\xbb\xbf" + STORY.replace("\n", "\r\n").encode(), block_size=32)
    assert task.spec()["params"]["text"] == STORY


# ---------------------------------------------------------------- user files: clear errors naming the line

@pytest.mark.parametrize("data, match", [
    ("cat\tCAT\ndog\tDOG\tx\n", "line 2 of the TSV file has 3 tab-separated columns"),
    ("cat\tCAT\n\nno tab here\n", "line 3 of the TSV file has 1 tab-separated column;"),
    ("cat\tCAT\n\tDOG\n", "line 2 of the TSV file has an empty source"),
    ("cat\t\n", "line 1 of the TSV file has an empty target"),
    (b"cat\tCAT\ndog\tD\xffG\n", r"line 2 of the TSV file is not UTF-8 text \(byte 13 .*0xff"),
    ("", "the TSV file is empty"),
    (" \n\n\t\n", "the TSV file is empty"),
    ("a\tb\n" + "x" * 2000 + "\ty\n", "line 2 of the TSV file has 2,002 characters; the most allowed is 1,000"),
    (b"a\tb\n" * (MAX_USER_BYTES // 4 + 1), "5,000,004 bytes; the most allowed is 5,000,000 bytes"),
])
def test_bad_tsv_files(data, match):
    with pytest.raises(ValueError, match=match):
        make_task("pairs", tsv=data)


def test_tsv_needs_three_sources():
    with pytest.raises(ValueError, match="only 2 distinct sources in the TSV file; at least 3"):
        make_task("pairs", tsv="a\tb\na\tc\nd\te\n")


@pytest.mark.parametrize("data, match", [
    (b"fine\n\xc3(\n", r"line 2 of the text is not UTF-8 text \(byte 5"),
    ("", "the text is empty"),
    ("ok\n" + "y" * 10_001, "line 2 of the text has 10,001 characters"),
    ("ab\ud800", "line 1 of the text has an invalid character"),
    ("tiny", "only 1 different blocks of 64 tokens in the text"),
])
def test_bad_texts(data, match):
    with pytest.raises(ValueError, match=match):
        make_task("text", text=data)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_uploaded_bytes_give_pairs_or_a_value_error(data):
    try:
        _, pairs = parse_tsv(data)
    except ValueError:
        return
    assert all(len(pair) == 2 and all(pair) for pair in pairs)


def test_pairs_task_splits_by_source():
    tsv = TSV + "cat\tKITTY\ncat\tCAT\n"  # a second target for cat, and a repeated line
    task = make_task("pairs", tsv=tsv, seed=1)
    assert not sources(task.train) & sources(task.test) and not sources(task.val) & sources(task.test)
    assert sorted(task.train + task.val + task.test) == sorted(set(parse_tsv(tsv)[1]))
    batch = task.collate(task.train)
    assert batch.src.shape[0] == len(task.train)


# ---------------------------------------------------------------- specs rebuild the identical task

@pytest.mark.parametrize("name, params", [
    ("copy", SMALL), ("reverse", {**SMALL, "alphabet": "xyz", "min_len": 4}), ("sort", SMALL),
    ("addition", SMALL), ("dates", SMALL), ("pydoc", {"block_size": 32}),
    ("text", {"text": STORY, "tokenizer": "bpe", "vocab_size": 400}), ("pairs", {"tsv": TSV}),
])
def test_spec_rebuilds_the_identical_task(name, params):
    task = make_task(name, 5, **params)
    spec = json.loads(json.dumps(task.spec()))
    again = task_from_spec(spec)
    assert again.spec() == task.spec() and again.kind == task.kind
    assert (again.train, again.val, again.test, again.probes) == (task.train, task.val, task.test, task.probes)
    assert again.tokenizer.spec() == task.tokenizer.spec() and again.tokenizer.files() == task.tokenizer.files()


def test_spec_reuses_a_given_tokenizer(pydoc):
    again = task_from_spec(pydoc.spec(), tokenizer=pydoc.tokenizer)
    assert again.tokenizer is pydoc.tokenizer and again.train == pydoc.train


def test_bad_spec():
    with pytest.raises(ValueError, match="name"):
        task_from_spec({"name": "copy"})


# ---------------------------------------------------------------- a user's input

def test_encode_source_seq2seq():
    task = small("reverse", alphabet="abc")
    assert task.encode_source("cab").tolist() == [[6, 4, 5, EOS]]  # a, b, c are ids 4, 5, 6 after the specials
    assert task.encode_source("aXa").tolist() == [[4, UNK, 4, EOS]]
    assert task.unknown_characters("aXYa!") == ["X", "Y", "!"]
    with pytest.raises(ValueError, match="empty"):
        task.encode_source("")
    with pytest.raises(ValueError, match="the most this model takes is 127"):
        task.encode_source("a" * 200)
    with pytest.raises(ValueError, match="200 characters long; the most this model takes is 19"):
        task.encode_source("a" * 200, max_len=20)
    assert task.encode_source("a" * 19, max_len=20).shape == (1, 20)


def test_encode_source_language_model(pydoc):
    ids = pydoc.tokenizer.encode("def f():")
    assert pydoc.encode_source("def f():").tolist() == [[BOS] + ids]
    assert pydoc.encode_source("").tolist() == [[BOS]]  # a language model may start from nothing
    with pytest.raises(ValueError, match="tokens long"):
        pydoc.encode_source("word " * 500)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300))
def test_encode_source_never_fails_unexpectedly(pydoc, dates, text):
    for task in (pydoc, dates):
        try:
            ids = task.encode_source(text)
        except ValueError:
            continue
        assert ids.dtype == torch.long and ids.shape[0] == 1 and ids.shape[1] <= 128


def test_a_repetitive_text_keeps_every_copy_for_training():
    task = make_task("text", text="the cat sat on the mat. " * 40, block_size=16)  # 3 different blocks, 60 in all
    assert len(set(task.train)) == len(set(task.val)) == len(set(task.test)) == 1
    assert len(task.train) + len(task.val) + len(task.test) == 60
    check_blocks(task, "the cat sat on the mat. " * 40, 16)


def test_small_splits_leave_training_data():
    task = make_task("pairs", tsv="a\tA\nb\tB\nc\tC\nd\tD\n", val_fraction=0.4, test_fraction=0.4)
    assert (len(task.train), len(task.val), len(task.test)) == (1, 1, 2)


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=300))
def test_any_user_text_gives_a_task_or_a_value_error(text):
    try:
        task = make_task("text", text=text, block_size=8)
    except ValueError:
        return
    normalised = text.removeprefix("\ufeff").replace("\r\n", "\n")
    check_blocks(task, normalised, 8)
    assert task.collate(task.train).tgt_in.shape[1] <= 8


def test_induction_sequences_are_a_random_half_said_twice():
    task = make_task("induction", seed=3, n_train=200, n_val=20, n_test=20)
    assert task.kind == "lm" and task.probes == task.test[:4]
    halves, prefixes = {}, set()
    for split in ("train", "val", "test"):
        for block in task.examples(split):
            prefix, half = repeat_split(block)
            assert 12 <= half <= 20 and prefix <= 8 and block[prefix:prefix + half] == block[prefix + half:]
            halves.setdefault(block[prefix:prefix + half], set()).add(split)
            prefixes.add(prefix)
    assert all(len(splits) == 1 for splits in halves.values())  # no half in two splits
    assert len(prefixes) > 5  # the repeat starts at many places
    assert task.tokenizer.vocab_size == 4 + 200
    assert task.max_tgt_len == max(len(b) for b in task.train + task.val + task.test)


def test_a_files_problem_comes_in_the_sessions_language_naming_its_line(in_chinese):
    with in_chinese() as zh:
        with pytest.raises(ValueError) as empty_source:
            make_task("pairs", tsv="cat\tCAT\n\tDOG\n")
        with pytest.raises(ValueError) as one_column:
            make_task("pairs", tsv="cat\tCAT\n\nno tab here\n")
        with pytest.raises(ValueError) as empty:
            make_task("pairs", tsv=" \n")
        with pytest.raises(ValueError) as too_long:
            make_task("reverse", alphabet="abc", **SMALL).encode_source("abc" * 50, max_len=20)
    assert str(empty_source.value) == zh("line {number} of the TSV file has an empty source", number=2)
    assert str(one_column.value) == zh(
        "line {number} of the TSV file has {n} tab-separated column; every line needs exactly 2: source<TAB>target",
        "line {number} of the TSV file has {n} tab-separated columns; every line needs exactly 2: source<TAB>target",
        1, number=3, n=1)
    assert str(empty.value) == zh("the {what} is empty", what=zh("TSV file"))
    assert str(too_long.value) == zh("the input is {n} characters long; the most this model takes is {most}", n=150,
                                     most=19)
    with pytest.raises(ValueError, match="^the input is 150 characters long; the most this model takes is 19$"):
        make_task("reverse", alphabet="abc", **SMALL).encode_source("abc" * 50, max_len=20)
