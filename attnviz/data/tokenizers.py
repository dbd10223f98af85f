"""Tokenizers with one interface: characters, and sentencepiece (BPE / unigram) trained in memory.

Every tokenizer shares the special ids PAD=0, BOS=1, EOS=2, UNK=3, so models, batching and decoding never
ask which kind they hold. `encode` adds no BOS/EOS; `decode` drops PAD/BOS/EOS and shows UNK as "\ufffd".

Sentencepiece is set up so that any Unicode text round-trips exactly: byte fallback spells characters it
has no piece for as UTF-8 bytes (`<0xE2>`), the "identity" normaliser keeps the text as written (no NFKC),
and no dummy prefix or whitespace collapsing is applied. Its one remaining rewrite is that a real "▁"
(U+2581, its space symbol) would decode as a space, so `encode` spells that character as bytes itself.
"""
import io

import sentencepiece as spm

from attnviz.checks import check_text, is_whole, reject
from attnviz.i18n import _

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIAL_LABELS = ("<pad>", "<bos>", "<eos>", "<unk>")
UNK_TEXT = "\ufffd"  # how decode shows an UNK token
MODEL_TYPES = ("bpe", "unigram")
SP_SPACE = "\u2581"  # "▁", sentencepiece's symbol for a space
_TRAIN_CHUNK_CHARS = 2000  # sentencepiece silently skips training sentences over 4192 bytes


def visible(text):
    """Text made readable as an axis label: control characters as escapes ("\\n", "\\x00")."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


class Tokenizer:
    """Shared interface; subclasses define vocab_size, encode, decode, id_to_token, spec, files."""

    pad_id, bos_id, eos_id, unk_id = PAD, BOS, EOS, UNK

    def labels(self, ids):
        """Readable labels for a sequence of ids (a list or a 1-D tensor)."""
        return [self.id_to_token(int(i)) for i in ids]

    def unknown_characters(self, text):
        """Distinct characters of `text` this tokenizer can only encode as UNK, in order of appearance."""
        return []

    def files(self):
        """Extra files a checkpoint must store to rebuild this tokenizer: {file name: bytes}."""
        return {}

    def _check_id(self, i):
        if not 0 <= i < self.vocab_size:
            raise ValueError(_("token id {i} is outside the vocabulary (0..{last})").format(
                i=i, last=self.vocab_size - 1))


class CharTokenizer(Tokenizer):
    """One token per character of `alphabet`, after the four specials; other characters become UNK."""

    def __init__(self, alphabet):
        if len(set(alphabet)) != len(alphabet):
            raise ValueError(_("the alphabet lists a character twice"))
        self.alphabet = alphabet
        self.vocab_size = len(SPECIAL_LABELS) + len(alphabet)
        self._ids = {ch: i for i, ch in enumerate(alphabet, start=len(SPECIAL_LABELS))}

    def encode(self, text):
        return [self._ids.get(ch, UNK) for ch in text]

    def decode(self, ids):
        chars = []
        for i in map(int, ids):
            self._check_id(i)
            if i == UNK:
                chars.append(UNK_TEXT)
            elif i >= len(SPECIAL_LABELS):
                chars.append(self.alphabet[i - len(SPECIAL_LABELS)])
        return "".join(chars)

    def id_to_token(self, i):
        self._check_id(i)
        if i < len(SPECIAL_LABELS):
            return SPECIAL_LABELS[i]
        ch = self.alphabet[i - len(SPECIAL_LABELS)]
        return "␣" if ch == " " else visible(ch)

    def unknown_characters(self, text):
        return list(dict.fromkeys(ch for ch in text if ch not in self._ids))

    def spec(self):
        return {"kind": "char", "alphabet": self.alphabet}


class SentencePieceTokenizer(Tokenizer):
    """A sentencepiece model (BPE or unigram) with byte fallback, so no input is ever lost."""

    FILE = "tokenizer.model"

    def __init__(self, model_bytes, model_type="bpe"):
        self.model_bytes, self.model_type = bytes(model_bytes), model_type
        try:
            self._sp = spm.SentencePieceProcessor(model_proto=self.model_bytes)
        except RuntimeError as error:
            raise ValueError(_("{file} is not a valid sentencepiece model ({error})").format(file=self.FILE,
                                                                                             error=error)) from None
        if (self._sp.pad_id(), self._sp.bos_id(), self._sp.eos_id(), self._sp.unk_id()) != (PAD, BOS, EOS, UNK):
            raise ValueError(_("{file} does not use the special ids pad=0, bos=1, eos=2, unk=3").format(file=self.FILE))
        self.vocab_size = self._sp.vocab_size()
        self._space_bytes = [self._sp.piece_to_id(f"<0x{b:02X}>") for b in SP_SPACE.encode()]

    @classmethod
    def train(cls, lines, vocab_size=512, model_type="bpe"):
        """Train on an iterable of strings (lines or paragraphs; long ones are cut). Takes ~0.05 s for BPE."""
        if model_type not in MODEL_TYPES:
            raise ValueError(_("model_type={model_type} is not possible: choose one of {choices}").format(
                model_type=repr(model_type), choices=", ".join(MODEL_TYPES)))
        if not is_whole(vocab_size):
            reject("vocab_size", vocab_size, _("use a whole number such as 512"))
        lines = [check_text(line).replace("\0", "") for line in lines]  # sentencepiece skips NULs; bytes spell them
        chunks = [line[i:i + _TRAIN_CHUNK_CHARS] for line in lines for i in range(0, len(line), _TRAIN_CHUNK_CHARS)]
        if not any(chunk.strip() for chunk in chunks):
            raise ValueError(_("there is no text to train a tokenizer on (only spaces, line breaks or NUL characters)"))
        needed = len(SPECIAL_LABELS) + 256 + len(set("".join(chunks)))
        if vocab_size < needed:
            raise ValueError(_("vocab_size={vocab_size} is too small for this text: it needs at least {needed} (4 "
                               "specials, 256 bytes and one piece per distinct character)").format(
                vocab_size=vocab_size, needed=needed))
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(chunks), model_writer=model, vocab_size=vocab_size, model_type=model_type,
            byte_fallback=True, character_coverage=1.0, normalization_rule_name="identity",
            add_dummy_prefix=False, remove_extra_whitespaces=False, allow_whitespace_only_pieces=True,
            split_digits=True, hard_vocab_limit=False, pad_id=PAD, bos_id=BOS, eos_id=EOS, unk_id=UNK,
            unk_surface=UNK_TEXT, num_threads=1, minloglevel=2)
        return cls(model.getvalue(), model_type)

    def encode(self, text):
        parts = self._sp.encode(check_text(text).split(SP_SPACE))
        ids = parts[0]
        for part in parts[1:]:
            ids += self._space_bytes + part
        return ids

    def decode(self, ids):
        """Bytes that do not form whole UTF-8 characters (a model's output may end mid-character) show as U+FFFD."""
        ids = [int(i) for i in ids]
        for i in ids:
            self._check_id(i)
        return self._sp.decode(ids)

    def id_to_token(self, i):
        self._check_id(i)
        return SPECIAL_LABELS[i] if i < len(SPECIAL_LABELS) else visible(self._sp.id_to_piece(i))

    def spec(self):
        return {"kind": "sentencepiece", "model_type": self.model_type, "vocab_size": self.vocab_size,
                "file": self.FILE}

    def files(self):
        return {self.FILE: self.model_bytes}


def tokenizer_from_spec(spec, files=None):
    """Rebuild a tokenizer from `tok.spec()` and `tok.files()` (as stored in a checkpoint)."""
    kind = spec.get("kind")
    if kind == "char":
        return CharTokenizer(spec["alphabet"])
    if kind == "sentencepiece":
        name = spec.get("file", SentencePieceTokenizer.FILE)
        if not files or name not in files:
            raise ValueError(_("the sentencepiece tokenizer needs its file {name}, which is missing").format(
                name=repr(name)))
        return SentencePieceTokenizer(files[name], spec.get("model_type", "bpe"))
    raise ValueError(_("unknown tokenizer kind {kind}: expected 'char' or 'sentencepiece'").format(kind=repr(kind)))
