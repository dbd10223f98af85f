"""Text corpora and user files: Python's own documentation, a user's text (language models) and TSV pairs.

Text is cut into fixed blocks of tokens; splits go by key (a block, a source), so nothing repeats across them.
What is wrong with a user's file is said in the session's language, naming the line.
"""
import random

from attnviz.data import stdlib
from attnviz.data.task import N_PROBES, Task
from attnviz.data.tokenizers import CharTokenizer, SentencePieceTokenizer
from attnviz.i18n import N_, _, ngettext


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
    first ones go to test, the next to validation and the rest to training (repeats included). `what` names the
    keys in the session's language."""
    keys = list(dict.fromkeys(map(key, items)))
    if len(keys) < 3:
        raise ValueError(_("there are only {n} {what}; at least 3 are needed (training, validation, test)").format(
            n=len(keys), what=what))
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
    train, val, test = _split_by_key(blocks, lambda block: block, seed, params, _(
        "different blocks of {size} tokens in the text (add text or lower block_size)").format(size=size))
    probes = [block[:32] for block in test[:N_PROBES]]
    return Task(name, "lm", seed, params, tokenizer, train, val, test, probes)


def pydoc_task(name, seed, params, tokenizer):
    return _lm_task(name, seed, params, tokenizer, pydoc_text())


def _document_lm_task(name, seed, params, tokenizer, documents):
    """A language model over whole documents [(key, text)]: documents (not lines or blocks) are split into
    train/val/test by a seeded shuffle, then each is cut into blocks of `block_size` tokens. The tokenizer is
    trained on the training documents only."""
    train, val, test = _split_by_key(list(documents), lambda document: document[0], seed, params, _("documents"))
    tokenizer = tokenizer or _make_tokenizer(params, [text for _key, text in train])
    size = params["block_size"]

    def blocks(split):
        out = []
        for _key, text in split:
            ids = tokenizer.encode(text)
            out += [tuple(ids[i:i + size]) for i in range(0, len(ids), size) if len(ids) - i >= 2]
        return out

    train, val, test = blocks(train), blocks(val), blocks(test)
    return Task(name, "lm", seed, params, tokenizer, train, val, test, [block[:32] for block in test[:N_PROBES]])


def prose_task(name, seed, params, tokenizer):
    return _document_lm_task(name, seed, params, tokenizer, stdlib.prose_documents())


def code_task(name, seed, params, tokenizer):
    return _document_lm_task(name, seed, params, tokenizer, stdlib.code_documents())


def read_user_text(data, what=None):
    """A user's upload (bytes or str) as text: UTF-8, at most MAX_USER_BYTES, not empty; CRLF becomes LF. `what`
    names it in the session's language (default: "file")."""
    what = what or _("file")
    if isinstance(data, str):
        try:
            data = data.encode("utf-8")
        except UnicodeEncodeError as error:
            line = data.count("\n", 0, error.start) + 1
            raise ValueError(_("line {line} of the {what} has an invalid character (a lone surrogate)").format(
                line=line, what=what)) from None
    if not isinstance(data, bytes):
        raise ValueError(_("the {what} must be text or bytes, not {kind}").format(what=what, kind=type(data).__name__))
    if len(data) > MAX_USER_BYTES:
        raise ValueError(_("the {what} is {size} bytes; the most allowed is {most} bytes (5 MB)").format(
            what=what, size=f"{len(data):,}", most=f"{MAX_USER_BYTES:,}"))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ValueError(_("line {line} of the {what} is not UTF-8 text (byte {position} of the file is 0x{byte}); "
                           "save it with UTF-8 encoding").format(line=line, what=what, position=error.start,
                                                                 byte=f"{data[error.start]:02x}")) from None
    text = text.removeprefix("\ufeff").replace("\r\n", "\n")
    if not text.strip():
        raise ValueError(_("the {what} is empty").format(what=what))
    return text


def _check_line_lengths(text, limit, what):
    for number, line in enumerate(text.split("\n"), start=1):
        if len(line) > limit:
            raise ValueError(_("line {number} of the {what} has {n} characters; the most allowed is {most}").format(
                number=number, what=what, n=f"{len(line):,}", most=f"{limit:,}"))


def text_task(name, seed, params, tokenizer):
    text = read_user_text(params["text"], _("text"))
    _check_line_lengths(text, MAX_TEXT_LINE_CHARS, _("text"))
    return _lm_task(name, seed, {**params, "text": text}, tokenizer, text)


EMPTY_COLUMNS = (N_("line {number} of the TSV file has an empty source"),
                 N_("line {number} of the TSV file has an empty target"))


def parse_tsv(data):
    """[(source, target)] from TSV text or bytes, one pair per line; blank lines are skipped."""
    text = read_user_text(data, _("TSV file"))
    _check_line_lengths(text, MAX_PAIR_LINE_CHARS, _("TSV file"))
    pairs = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        columns = line.split("\t")
        if len(columns) != 2:
            raise ValueError(ngettext(
                "line {number} of the TSV file has {n} tab-separated column; every line needs exactly 2: "
                "source<TAB>target",
                "line {number} of the TSV file has {n} tab-separated columns; every line needs exactly 2: "
                "source<TAB>target", len(columns)).format(number=number, n=len(columns)))
        for column, empty in zip(columns, EMPTY_COLUMNS):
            if not column:
                raise ValueError(_(empty).format(number=number))
        pairs.append(tuple(columns))
    return text, pairs


def pairs_task(name, seed, params, tokenizer):
    text, pairs = parse_tsv(params["tsv"])
    train, val, test = _split_by_key(list(dict.fromkeys(pairs)), lambda pair: pair[0], seed, params,  # no repeats
                                     _("distinct sources in the TSV file"))
    tokenizer = tokenizer or _make_tokenizer(params, [src for src, _tgt in pairs] + [tgt for _src, tgt in pairs])
    return Task(name, "seq2seq", seed, {**params, "tsv": text}, tokenizer, train, val, test, test[:N_PROBES])
