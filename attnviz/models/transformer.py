"""Encoder-decoder Transformer and decoder-only language model, with one decoding interface,
and a BERT-like encoder without decoder.

    model(src, tgt_in) -> logits                       (EncoderDecoder)
    model(tokens) -> logits                            (LanguageModel)
    model.logits(src, tgt_in) -> logits                either kind (an LM's src is None), as training calls it
    model(ids, padding_mask) -> token states           (EncoderOnly: no decoding)
    state = model.encode(src)                          memory and empty KV caches
    logits, state = model.decode_step(state, token)    one new position, using the caches

Attention modules are named so their hook points read like addresses:
`encoder.layers.0.self_attn`, `decoder.layers.1.self_attn`, `decoder.layers.1.cross_attn`.
"""
import math
from dataclasses import dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from attnviz.models.attention import KVCache, MultiHeadAttention
from attnviz.models.positional import PositionalEncoding


def causal_mask(Tq, Tk, device=None):
    """(Tq, Tk) bool, True above the diagonal: the last Tq of Tk positions may not look ahead."""
    return torch.ones(Tq, Tk, dtype=torch.bool, device=device).triu(diagonal=Tk - Tq + 1)


def layer_norm(config):
    return nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)


def xavier_init(model):
    """Xavier-uniform for every weight matrix; a learned positional table keeps its own N(0, 0.02) start."""
    own_start = {id(m.table) for m in model.modules() if isinstance(m, PositionalEncoding) and m.kind == "learned"}
    for p in model.parameters():
        if p.dim() > 1 and id(p) not in own_start:
            nn.init.xavier_uniform_(p)


class Embedding(nn.Module):
    """Token embedding (scaled by sqrt(d_model) if configured) plus positional encoding;
    BERT adds a token-type (segment) embedding and a LayerNorm when the config asks for them."""

    def __init__(self, vocab_size, config):
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, config.d_model)
        self.positional = PositionalEncoding(config.positional, config.max_len, config.d_model)
        self.scale = math.sqrt(config.d_model) if config.scale_embeddings else 1.0
        self.token_types = nn.Embedding(config.n_token_types, config.d_model) if config.n_token_types else None
        self.norm = layer_norm(config) if config.embedding_norm else nn.Identity()
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, ids, offset=0, token_types=None):
        x = self.positional(self.tokens(ids) * self.scale, offset)  # (B, T, D)
        if self.token_types is not None:
            x = x + self.token_types(torch.zeros_like(ids) if token_types is None else token_types)  # (B, T, D)
        return self.dropout(self.norm(x))


class FeedForward(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.linear1 = nn.Linear(config.d_model, config.d_ff)
        self.linear2 = nn.Linear(config.d_ff, config.d_model)
        self.activation = F.gelu if config.activation == "gelu" else F.relu
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.linear2(self.dropout(self.activation(self.linear1(x))))


class Block(nn.Module):
    """Residual sub-layer wiring shared by encoder and decoder layers (pre- or post-LayerNorm)."""

    def __init__(self, config):
        super().__init__()
        self.norm_first = config.norm_first
        self.dropout = nn.Dropout(config.dropout)

    def residual(self, x, norm, sublayer):
        if self.norm_first:
            return x + self.dropout(sublayer(norm(x)))
        return norm(x + self.dropout(sublayer(x)))


class EncoderLayer(Block):
    def __init__(self, config):
        super().__init__(config)
        self.self_attn = MultiHeadAttention(config.d_model, config.n_heads, config.dropout)
        self.norm1 = layer_norm(config)
        self.ff, self.norm2 = (FeedForward(config), layer_norm(config)) if config.d_ff else (None, None)

    def forward(self, x, key_padding_mask=None):
        x = self.residual(x, self.norm1, lambda h: self.self_attn(h, h, h, key_padding_mask=key_padding_mask))
        return x if self.ff is None else self.residual(x, self.norm2, self.ff)


class DecoderLayer(Block):
    def __init__(self, config, cross_attention):
        super().__init__(config)
        self.self_attn = MultiHeadAttention(config.d_model, config.n_heads, config.dropout)
        self.cross_attn = MultiHeadAttention(config.d_model, config.n_heads, config.dropout) if cross_attention else None
        self.norm1, self.norm2 = layer_norm(config), layer_norm(config)  # norm2 unused without cross-attention
        self.ff, self.norm3 = (FeedForward(config), layer_norm(config)) if config.d_ff else (None, None)

    def forward(self, x, memory=None, memory_key_padding_mask=None, attn_mask=None, caches=(None, None),
                is_causal=False):
        self_cache, cross_cache = caches
        x = self.residual(x, self.norm1, lambda h: self.self_attn(h, h, h, attn_mask=attn_mask, cache=self_cache,
                                                                  is_causal=is_causal))
        if self.cross_attn is not None:
            x = self.residual(x, self.norm2, lambda h: self.cross_attn(
                h, memory, memory, key_padding_mask=memory_key_padding_mask, cache=cross_cache))
        return x if self.ff is None else self.residual(x, self.norm3, self.ff)


class Encoder(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.embed = Embedding(config.src_vocab_size, config)
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.n_encoder_layers))
        self.norm = layer_norm(config) if config.norm_first else nn.Identity()

    def forward(self, src, key_padding_mask=None, token_types=None):
        x = self.embed(src, token_types=token_types)  # (B, S, D)
        for layer in self.layers:
            x = layer(x, key_padding_mask)
        return self.norm(x)


class Decoder(nn.Module):
    def __init__(self, config, cross_attention):
        super().__init__()
        self.embed = Embedding(config.tgt_vocab_size, config)
        self.layers = nn.ModuleList(DecoderLayer(config, cross_attention) for _ in range(config.n_decoder_layers))
        self.norm = layer_norm(config) if config.norm_first else nn.Identity()

    def forward(self, tgt, memory=None, memory_key_padding_mask=None, caches=None, offset=0):
        x = self.embed(tgt, offset)  # (B, T, D)
        T = tgt.shape[1]
        attn_mask = causal_mask(T, offset + T, tgt.device) if T > 1 else None  # (T, offset + T)
        is_causal = attn_mask is not None and offset == 0  # square (T, T): the fused path needs no mask tensor
        for i, layer in enumerate(self.layers):
            x = layer(x, memory, memory_key_padding_mask, attn_mask, caches[i] if caches else (None, None), is_causal)
        return self.norm(x)


@dataclass
class DecodeState:
    """Everything `decode_step` needs: encoder memory (None for an LM), KV caches, next position."""
    memory: torch.Tensor | None  # (B, S, D)
    memory_key_padding_mask: torch.Tensor | None  # (B, S)
    caches: list  # per decoder layer: (self-attention KVCache, cross-attention KVCache or None)
    position: int

    def select(self, index):
        """Keep/reorder batch rows, e.g. the surviving hypotheses of beam search."""
        pick = lambda t: None if t is None else t.index_select(0, index)
        caches = [(s.select(index), c and c.select(index)) for s, c in self.caches]
        return replace(self, memory=pick(self.memory), memory_key_padding_mask=pick(self.memory_key_padding_mask),
                       caches=caches)


class TransformerBase(nn.Module):
    """What both model kinds share: layers, output projection, initialisation, decode_step."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        if not config.is_language_model:
            self.encoder = Encoder(config)
        self.decoder = Decoder(config, cross_attention=not config.is_language_model)
        self.lm_head = nn.Linear(config.d_model, config.tgt_vocab_size, bias=False)
        xavier_init(self)
        if config.tie_embeddings:
            self.lm_head.weight = self.decoder.embed.tokens.weight

    def empty_caches(self):
        has_cross = not self.config.is_language_model
        return [(KVCache(), KVCache(static=True) if has_cross else None) for _ in self.decoder.layers]

    def decode_step(self, state, token):
        """Feed one token per row, (B,), at position `state.position`; return (B, V) logits and the new state."""
        caches = [(s.copy(), c and c.copy()) for s, c in state.caches]
        x = self.decoder(token[:, None], state.memory, state.memory_key_padding_mask, caches, state.position)
        logits = self.lm_head(x[:, -1])  # x: (B, 1, D) -> (B, V)
        return logits, replace(state, caches=caches, position=state.position + 1)


class EncoderDecoder(TransformerBase):
    has_encoder = True

    def padding(self, src):
        return src == self.config.pad_id  # (B, S) True at padding

    def forward(self, src, tgt_in):
        src_padding = self.padding(src)
        memory = self.encoder(src, src_padding)  # (B, S, D)
        return self.lm_head(self.decoder(tgt_in, memory, src_padding))  # (B, T, V)

    def logits(self, src, tgt_in):
        """(B, T, V): the one call every model kind answers (see LanguageModel.logits)."""
        if src is None:
            raise ValueError("this model has an encoder: the batch needs source tokens")
        return self(src, tgt_in)

    def encode(self, src):
        src_padding = self.padding(src)
        return DecodeState(self.encoder(src, src_padding), src_padding, self.empty_caches(), 0)


class LanguageModel(TransformerBase):
    has_encoder = False

    def forward(self, tokens):
        return self.lm_head(self.decoder(tokens))  # (B, T, V)

    def logits(self, src, tgt_in):
        """(B, T, V) for `tgt_in`; a language model has no source, so `src` (None) is not read."""
        return self(tgt_in)

    def encode(self, prefix):
        """Prefill the caches with a (B, T0) prefix (T0 may be 0); the next token goes at position T0."""
        caches = self.empty_caches()
        if prefix.shape[1]:
            self.decoder(prefix, caches=caches)
        return DecodeState(None, None, caches, prefix.shape[1])


class EncoderOnly(nn.Module):
    """A BERT-like encoder without decoder: one contextual state per token, no output head, no decoding."""
    has_encoder = True

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        xavier_init(self)

    def forward(self, ids, padding_mask=None, token_types=None):
        """(B, T) ids -> (B, T, D) states; `padding_mask` (B, T) is True at padding (default: ids == pad_id)."""
        if padding_mask is None:
            padding_mask = ids == self.config.pad_id  # (B, T)
        return self.encoder(ids, padding_mask, token_types)  # (B, T, D)
