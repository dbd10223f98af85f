"""Text corpora and user files: Python's own documentation, a user's text (language models) and TSV pairs.

Text is cut into fixed blocks of tokens; splits go by key (a block, a source), so nothing repeats across them.
"""
import random

from attnviz.data import stdlib
from attnviz.data.task import N_PROBES, Task
from attnviz.data.tokenizers import CharTokenizer, SentencePieceTokenizer


MAX_USER_BYTES = 5_000_000  # user text and TSV files, which the task spec (and so a checkpoint) stores inline
MAX_TEXT_LINE_CHARS = 10_000
MAX_PAIR_LINE_CHARS = 1_000


def pydoc_text():
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


def pydoc_task(name, seed, params, tokenizer):
    return _lm_task(name, seed, params, tokenizer, pydoc_text())


def _document_lm_task(name, seed, params, tokenizer, documents):
    """A language model over whole documents [(key, text)]: documents (not lines or blocks) are split into
    train/val/test by a seeded shuffle, then each is cut into blocks of `block_size` tokens. The tokenizer is
    trained on the training documents only."""
    train, val, test = _split_by_key(list(documents), lambda document: document[0], seed, params, "documents")
    tokenizer = tokenizer or _make_tokenizer(params, [text for _, text in train])
    size = params["block_size"]

    def blocks(split):
        out = []
        for _, text in split:
            ids = tokenizer.encode(text)
            out += [tuple(ids[i:i + size]) for i in range(0, len(ids), size) if len(ids) - i >= 2]
        return out

    train, val, test = blocks(train), blocks(val), blocks(test)
    return Task(name, "lm", seed, params, tokenizer, train, val, test, [block[:32] for block in test[:N_PROBES]])


def prose_task(name, seed, params, tokenizer):
    return _document_lm_task(name, seed, params, tokenizer, stdlib.prose_documents())


def code_task(name, seed, params, tokenizer):
    return _document_lm_task(name, seed, params, tokenizer, stdlib.code_documents())


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


def text_task(name, seed, params, tokenizer):
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
            raise ValueError(f"line {number} of the TSV file has {len(columns)} tab-separated column"
                             f"{'' if len(columns) == 1 else 's'}; "
                             "every line needs exactly 2: source<TAB>target")
        for column, part in zip(columns, ("source", "target")):
            if not column:
                raise ValueError(f"line {number} of the TSV file has an empty {part}")
        pairs.append(tuple(columns))
    return text, pairs


def pairs_task(name, seed, params, tokenizer):
    text, pairs = parse_tsv(params["tsv"])
    train, val, test = _split_by_key(list(dict.fromkeys(pairs)), lambda pair: pair[0], seed, params,  # no repeats
                                     "distinct sources in the TSV file")
    tokenizer = tokenizer or _make_tokenizer(params, [src for src, _ in pairs] + [tgt for _, tgt in pairs])
    return Task(name, "seq2seq", seed, {**params, "tsv": text}, tokenizer, train, val, test, test[:N_PROBES])
