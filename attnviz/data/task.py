"""A task: examples split into train/val/test, the tokenizer for them, and batches of them.

A task keeps its examples as plain data (seq2seq: (source, target) strings; lm: tuples of token ids, one
fixed-length block each) and turns them into `Batch`es of right-padded token tensors. `task.spec()` (name,
seed, params) rebuilds the identical task with `attnviz.data.tasks.task_from_spec`.
"""
import functools
import random

import torch

from attnviz.data.batch import Batch, pad_rows
from attnviz.data.tokenizers import BOS, EOS, CharTokenizer
from attnviz.i18n import _


MAX_INPUT_TOKENS = 128  # default cap for encode_source (TransformerConfig's default max_len)
N_PROBES = 4


class Task:
    """Examples split into train/val/test, the tokenizer for them, and batching."""

    def __init__(self, name, kind, seed, params, tokenizer, train, val, test, probes):
        self.name, self.kind, self.seed, self.params = name, kind, seed, params
        self.tokenizer, self.train, self.val, self.test, self.probes = tokenizer, train, val, test, probes

    def spec(self):
        """JSON-able; `task_from_spec(task.spec())` rebuilds this task (user text is stored inline)."""
        return {"name": self.name, "seed": self.seed, "params": dict(self.params)}

    def examples(self, split):
        if split not in ("train", "val", "test"):
            raise ValueError(_("unknown split {split}: use 'train', 'val' or 'test'").format(split=repr(split)))
        return getattr(self, split)

    @functools.cached_property
    def max_src_len(self):
        """Widest `src` of any batch (source tokens + EOS); 0 for a language model."""
        if self.kind == "lm":
            return 0
        return 1 + max(len(self.tokenizer.encode(src)) for src, _tgt in self.train + self.val + self.test)

    @functools.cached_property
    def max_tgt_len(self):
        """Widest `tgt_in`/`tgt_out` of any batch (BOS + target tokens, or a block for a language model)."""
        if self.kind == "lm":
            return max(len(block) for block in self.train + self.val + self.test)
        return 1 + max(len(self.tokenizer.encode(tgt)) for _src, tgt in self.train + self.val + self.test)

    def characters(self, split):
        """How many characters a split's targets spell (a language model's blocks decoded): what bits per
        character divide by."""
        if self.kind != "lm":
            return sum(len(tgt) + 1 for _src, tgt in self.examples(split))  # + 1: the EOS a target ends with
        return sum(len(self.tokenizer.decode(block)) for block in self.examples(split))

    def collate(self, examples):
        """A Batch from a list of examples (e.g. `task.probes`)."""
        if self.kind == "lm":
            return Batch(None, pad_rows([[BOS, *block[:-1]] for block in examples]), pad_rows([[*block] for block in examples]))
        pairs = [(self.tokenizer.encode(src), self.tokenizer.encode(tgt)) for src, tgt in examples]
        return Batch(pad_rows([src + [EOS] for src, _tgt in pairs]), pad_rows([[BOS] + tgt for _src, tgt in pairs]),
                     pad_rows([tgt + [EOS] for _src, tgt in pairs]))

    def batches(self, split, batch_size, seed=0):
        """Train: endless, reshuffled every epoch by `seed`. Val/test: one pass in order."""
        examples = self.examples(split)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(_("batch_size={batch_size} is not possible: use a whole number of 1 or more").format(
                batch_size=repr(batch_size)))
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

    def encode_source(self, text, max_len=None, device="cpu"):
        """A user's input as a (1, S) LongTensor on `device`: seq2seq tokens + EOS; lm BOS + tokens (may be just BOS).

        `max_len` caps S (pass the model's `config.max_len`); the default is MAX_INPUT_TOKENS."""
        max_len = max_len or MAX_INPUT_TOKENS
        ids = self.tokenizer.encode(text)
        if not ids and self.kind == "seq2seq":
            raise ValueError(_("the input is empty: type something to transform"))
        if len(ids) + 1 > max_len:
            too_long = (_("the input is {n} characters long; the most this model takes is {most}")
                        if isinstance(self.tokenizer, CharTokenizer) else
                        _("the input is {n} tokens long; the most this model takes is {most}"))
            raise ValueError(too_long.format(n=len(ids), most=max_len - 1))
        return torch.tensor([ids + [EOS] if self.kind == "seq2seq" else [BOS] + ids], dtype=torch.long,
                            device=device)  # (1, S)
