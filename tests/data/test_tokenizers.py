import json
import random

import pytest
from fuzzing import fuzz
from hypothesis import given, settings
from hypothesis import strategies as st

from attnviz.data.corpora import pydoc_text as _pydoc_text
from attnviz.data.tokenizers import (BOS, EOS, MODEL_TYPES, PAD, UNK, CharTokenizer, SentencePieceTokenizer,
                                    tokenizer_from_spec)

ALPHABET = "abc xyz\n0123456789"
# Characters that tend to break normalising tokenizers: sentencepiece's own space symbol, whitespace runs,
# NUL and other controls, combining marks, NFKC-foldable forms, emoji, a BOM, and text in other scripts.
TRICKY = " ▁\t\n\r\x00\x7f\u200b\ufeffé\u0301Ａﬁ①😀👩‍👩‍👧日本語ÄßИя"


@pytest.fixture(scope="module")
def bpe():
    return SentencePieceTokenizer.train(_pydoc_text().split("\n\n"), vocab_size=512, model_type="bpe")


@pytest.fixture(scope="module")
def unigram():
    lines = ["the cat sat on the mat", "a  dog\tran    away", "naïve café", "x = f(1, 2)"] * 20
    return SentencePieceTokenizer.train(lines, vocab_size=300, model_type="unigram")


@pytest.fixture(scope="module")
def sentencepieces(bpe, unigram):
    return [bpe, unigram]


def random_unicode(rng, n):
    """n random code points from all planes, surrogates left out (no str from a file can hold them)."""
    points = (rng.randrange(0x110000) for _ in range(n))
    return "".join(chr(p) for p in points if not 0xD800 <= p <= 0xDFFF)


# ---------------------------------------------------------------- characters

def test_char_ids_follow_the_specials():
    tok = CharTokenizer("ab c")
    assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id) == (0, 1, 2, 3) == (PAD, BOS, EOS, UNK)
    assert tok.vocab_size == 4 + 4
    assert tok.encode("cab a") == [7, 4, 5, 6, 4]
    assert tok.encode("") == []


def test_char_unknown_characters_become_unk():
    tok = CharTokenizer("ab")
    assert tok.encode("aXbé") == [4, UNK, 5, UNK]
    assert tok.unknown_characters("aXbéX") == ["X", "é"]
    assert tok.decode(tok.encode("aXb")) == "a\ufffdb"


def test_char_decode_skips_pad_bos_eos():
    tok = CharTokenizer("ab")
    assert tok.decode([BOS, 4, 5, EOS, PAD, PAD]) == "ab"


def test_char_labels_are_readable():
    tok = CharTokenizer("a \n\x00")
    assert tok.labels(range(tok.vocab_size)) == ["<pad>", "<bos>", "<eos>", "<unk>", "a", "␣", "\\n", "\\x00"]


def test_char_rejects_bad_alphabet_and_ids():
    with pytest.raises(ValueError, match="twice"):
        CharTokenizer("aba")
    tok = CharTokenizer("ab")
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([6])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.id_to_token(-1)


@given(st.text(alphabet=ALPHABET, max_size=300))
def test_char_round_trip_in_alphabet(text):
    tok = CharTokenizer(ALPHABET)
    ids = tok.encode(text)
    assert len(ids) == len(text) and UNK not in ids
    assert tok.decode(ids) == text


@given(st.text(max_size=300))
def test_char_any_text_encodes_one_id_per_character(text):
    tok = CharTokenizer(ALPHABET)
    ids = tok.encode(text)
    assert len(ids) == len(text)
    assert [i == UNK for i in ids] == [ch not in ALPHABET for ch in text]
    assert set(tok.unknown_characters(text)) == set(text) - set(ALPHABET)
    assert tok.labels(ids) == [{" ": "␣", "\n": "\\n"}.get(ch, ch) if ch in ALPHABET else "<unk>" for ch in text]


def test_char_spec_round_trip():
    tok = CharTokenizer("xyz ")
    spec = json.loads(json.dumps(tok.spec()))
    assert spec["kind"] == "char" and tok.files() == {}
    again = tokenizer_from_spec(spec, {})
    assert again.encode("zy x") == tok.encode("zy x") and again.vocab_size == tok.vocab_size


# ---------------------------------------------------------------- sentencepiece

def test_sentencepiece_specials_and_vocab(bpe):
    assert (bpe.pad_id, bpe.bos_id, bpe.eos_id, bpe.unk_id) == (0, 1, 2, 3)
    assert bpe.vocab_size <= 512
    assert bpe.labels([PAD, BOS, EOS, UNK]) == ["<pad>", "<bos>", "<eos>", "<unk>"]
    ids = bpe.encode("the value")
    assert all(i >= 4 for i in ids)
    assert bpe.decode([BOS] + ids + [EOS, PAD, PAD]) == "the value"


def test_sentencepiece_learns_word_pieces(bpe):
    assert len(bpe.encode("the object")) < len("the object")  # it merges, unlike characters
    assert "▁the" in bpe.labels(range(bpe.vocab_size))


def test_sentencepiece_labels_are_printable(sentencepieces):
    for tok in sentencepieces:
        labels = tok.labels(range(tok.vocab_size))
        assert all(label and label.isprintable() for label in labels)
        assert "\\n" in labels or "<0x0A>" in labels


@pytest.mark.parametrize("text", ["", " ", "   ", "\n\n", "a  b", " lead", "trail ", "▁", "▁▁x ▁", "\r\n",
                                  "\x00", "😀", "Ａ ﬁ ①", "e\u0301", "\ufeffBOM", "tab\there", TRICKY * 3])
def test_sentencepiece_round_trips_tricky_text(sentencepieces, text):
    for tok in sentencepieces:
        assert tok.decode(tok.encode(text)) == text


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200) | st.text(alphabet=TRICKY, max_size=200))
def test_sentencepiece_round_trips_any_text(sentencepieces, text):
    for tok in sentencepieces:
        ids = tok.encode(text)
        assert all(0 <= i < tok.vocab_size for i in ids)
        assert tok.decode(ids) == text
        assert len(tok.labels(ids)) == len(ids)


def test_very_long_text_through_every_tokenizer(sentencepieces):
    rng = random.Random(0)
    texts = [random_unicode(rng, 100_000), "word " * 50_000, "▁" * 20_000, " " * 20_000]
    for tok in sentencepieces:
        for text in texts:
            assert tok.decode(tok.encode(text)) == text
    chars = CharTokenizer(ALPHABET)
    for text in texts:
        assert len(chars.encode(text)) == len(text)
    in_alphabet = "".join(rng.choices(ALPHABET, k=200_000))
    assert chars.decode(chars.encode(in_alphabet)) == in_alphabet


def test_sentencepiece_lone_surrogate_is_a_value_error(bpe):
    with pytest.raises(ValueError, match="position 2"):
        bpe.encode("ab\ud800")


def test_sentencepiece_decode_shows_unk_and_rejects_bad_ids(bpe):
    assert bpe.decode([UNK]) == "\ufffd"
    with pytest.raises(ValueError, match="outside the vocabulary"):
        bpe.decode([bpe.vocab_size])


def test_sentencepiece_spec_and_files_round_trip(sentencepieces):
    for tok in sentencepieces:
        spec = json.loads(json.dumps(tok.spec()))
        assert spec["kind"] == "sentencepiece" and spec["model_type"] == tok.model_type
        again = tokenizer_from_spec(spec, tok.files())
        text = "Hello, wörld ▁ 😀"
        assert again.encode(text) == tok.encode(text) and again.vocab_size == tok.vocab_size
        assert again.model_type == tok.model_type


def test_sentencepiece_training_is_deterministic():
    lines = ["one two three", "two three four", "three four five"] * 10
    assert (SentencePieceTokenizer.train(lines, 300).model_bytes
            == SentencePieceTokenizer.train(lines, 300).model_bytes)


def test_sentencepiece_training_errors():
    with pytest.raises(ValueError, match="at least 263"):
        SentencePieceTokenizer.train(["abc"], vocab_size=100)
    with pytest.raises(ValueError, match="no text"):
        SentencePieceTokenizer.train(["", "  "], vocab_size=300)
    with pytest.raises(ValueError, match="bpe, unigram"):
        SentencePieceTokenizer.train(["abc"], vocab_size=300, model_type="wordpiece")


def test_tokenizer_from_spec_errors(bpe):
    with pytest.raises(ValueError, match="missing"):
        tokenizer_from_spec(bpe.spec(), {})
    with pytest.raises(ValueError, match="not a valid sentencepiece model"):
        tokenizer_from_spec(bpe.spec(), {"tokenizer.model": b"not a model"})
    with pytest.raises(ValueError, match="unknown tokenizer kind"):
        tokenizer_from_spec({"kind": "wordpiece"}, {})


@pytest.mark.parametrize("lines, message", [
    (["\x00" * 50], "no text"),
    (["\x00 \x00", "\x00\n"], "no text"),
    (["ab\ud800cd" * 10], "lone surrogate"),
    (["fine", "\udfff"], "lone surrogate"),
    ([b"bytes"], "reads text, not a bytes"),
])
def test_sentencepiece_training_on_text_it_cannot_take_is_a_value_error(lines, message):
    with pytest.raises(ValueError, match=message):
        SentencePieceTokenizer.train(lines, vocab_size=300)


def test_sentencepiece_trained_with_nuls_still_spells_them():
    tok = SentencePieceTokenizer.train(["xy\x00zw" * 50], vocab_size=300)
    assert tok.decode(tok.encode("a\x00b\x00")) == "a\x00b\x00"


@fuzz(25)
@given(lines=st.lists(st.text(max_size=40) | st.text(alphabet=TRICKY, max_size=40)
                      | st.text(st.characters(exclude_categories=()), max_size=10), min_size=1, max_size=4),
       vocab_size=st.integers(250, 400) | st.sampled_from([0, -1, 2**40]), model_type=st.sampled_from(MODEL_TYPES))
def test_sentencepiece_training_on_random_text_is_a_tokenizer_or_a_value_error(lines, vocab_size, model_type):
    try:
        tok = SentencePieceTokenizer.train(lines, vocab_size=vocab_size, model_type=model_type)
    except ValueError as error:
        assert str(error)
    else:
        for line in lines:
            assert tok.decode(tok.encode(line)) == line
