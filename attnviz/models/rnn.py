"""Recurrent encoder-decoder (RNN, GRU or LSTM), with or without attention.

The same interface as the Transformer's EncoderDecoder, so training, decoding and the pages treat both alike:

    model(src, tgt_in) -> logits                       (B, T, V)
    state = model.encode(src)                          encoder states, projected keys, decoder's first state
    logits, state = model.decode_step(state, token)    one step of the decoder

One formulation for all three kinds, the global attention of Luong et al. (2015) without input feeding:

    s_t = RNN(embed(y_{t-1}), s_{t-1})                 s_0 = the encoder's final state (per layer)
    attention "none":  logits_t = W_o s_t              the decoder sees only that fixed-size context vector
    with attention:    a_t = softmax_j score(s_t, h_j)  over the encoder's states h_j (padding gets 0)
                       c_t = sum_j a_tj h_j
                       logits_t = W_o tanh(W_c [c_t; s_t])
    "bahdanau" (additive, Bahdanau et al. 2015):  score(s, h) = v^T tanh(W_q s + W_k h)
    "luong" (multiplicative, "general"):          score(s, h) = s^T W h

Because the context enters after the recurrence (no input feeding), the decoder RNN runs over a whole
target in one call, and the keys W_k h / W h are computed once per source. With "none" this is the
baseline of Bahdanau et al. (2015) (RNNencdec), whose fixed context vector degrades with source length.

A bidirectional encoder gives each direction hidden_size // 2 units and concatenates them, so encoder
states and final states have hidden_size features either way. Sources are right-padded with
`config.pad_id`; packed sequences make padding change nothing at real positions.

Module names: `encoder.embed`, `encoder.rnn`, `decoder.embed`, `decoder.rnn`, `decoder.attention`
(hook points `decoder.attention.hook_pattern` (B, 1, Tq, Tk) and `decoder.attention.hook_z` (B, Tq, 1, D),
one "head"), `decoder.combine` (W_c), `lm_head` (W_o).
"""
from dataclasses import dataclass, replace

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from attnviz.models.hooks import HookPoint

CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


def map_hidden(fn, hidden):
    """Apply fn to a recurrent state: one tensor (RNN, GRU) or an (h, c) pair (LSTM)."""
    return tuple(fn(h) for h in hidden) if isinstance(hidden, tuple) else fn(hidden)


def join_directions(h):
    """(L * 2, B, H/2) final states of a bidirectional RNN -> (L, B, H), forward then backward per layer."""
    L2, B, half = h.shape
    return h.view(L2 // 2, 2, B, half).transpose(1, 2).reshape(L2 // 2, B, 2 * half)


def make_rnn(config, input_size, bidirectional=False):
    hidden_size = config.hidden_size // 2 if bidirectional else config.hidden_size
    return CELLS[config.cell](input_size, hidden_size, config.n_layers, batch_first=True,
                              dropout=config.dropout if config.n_layers > 1 else 0.0, bidirectional=bidirectional)


class Attention(nn.Module):
    """Softmax over scores of one query per decoder step against all encoder states; returns the context."""

    def __init__(self):
        super().__init__()
        self.hook_pattern = HookPoint()  # (B, 1, Tq, Tk) attention weights, one head
        self.hook_z = HookPoint()  # (B, Tq, 1, D) context vectors, one head

    def forward(self, query, keys, memory, key_padding_mask):
        """query (B, Tq, H) decoder states, keys (B, Tk, K) from `project_keys`, memory (B, Tk, D) -> (B, Tq, D)."""
        scores = self.score(query, keys).masked_fill(key_padding_mask[:, None, :], float("-inf"))  # (B, Tq, Tk)
        sees_nothing = key_padding_mask.all(dim=-1)[:, None, None]  # (B, 1, 1) an all-padding source: 0, not NaN
        pattern = self.hook_pattern(scores.softmax(dim=-1).masked_fill(sees_nothing, 0.0)[:, None])  # (B, 1, Tq, Tk)
        z = self.hook_z((pattern[:, 0] @ memory)[:, :, None])  # (B, Tq, 1, D)
        return z[:, :, 0]  # (B, Tq, D)


class AdditiveAttention(Attention):
    """Bahdanau et al. (2015): score(s, h) = v^T tanh(W_q s + W_k h)."""

    def __init__(self, query_size, key_size, attention_size):
        super().__init__()
        self.q_proj = nn.Linear(query_size, attention_size, bias=False)  # W_q
        self.k_proj = nn.Linear(key_size, attention_size, bias=False)  # W_k
        self.v = nn.Linear(attention_size, 1, bias=False)

    def project_keys(self, memory):
        return self.k_proj(memory)  # (B, Tk, A)

    def score(self, query, keys):
        hidden = torch.tanh(self.q_proj(query)[:, :, None] + keys[:, None])  # (B, Tq, Tk, A)
        return self.v(hidden)[..., 0]  # (B, Tq, Tk)


class MultiplicativeAttention(Attention):
    """Luong et al. (2015), "general": score(s, h) = s^T W h."""

    def __init__(self, query_size, key_size):
        super().__init__()
        self.k_proj = nn.Linear(key_size, query_size, bias=False)  # W

    def project_keys(self, memory):
        return self.k_proj(memory)  # (B, Tk, H)

    def score(self, query, keys):
        return query @ keys.transpose(1, 2)  # (B, Tq, Tk)


def make_attention(kind, size):
    """The attention module for `RNNConfig.attention`, over decoder states and encoder states of one size."""
    if kind == "bahdanau":
        return AdditiveAttention(size, size, size)
    if kind == "luong":
        return MultiplicativeAttention(size, size)
    return None


class Encoder(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.embed = nn.Embedding(config.src_vocab_size, config.embed_dim)
        self.rnn = make_rnn(config, config.embed_dim, config.bidirectional)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, src, key_padding_mask):
        """-> encoder states (B, S, H) (zero at padding) and the final state of each layer, (L, B, H) per tensor."""
        lengths = (~key_padding_mask).sum(dim=1).clamp(min=1).cpu()  # (B,)
        packed = pack_padded_sequence(self.dropout(self.embed(src)), lengths, batch_first=True, enforce_sorted=False)
        states, final = self.rnn(packed)
        memory, _ = pad_packed_sequence(states, batch_first=True, total_length=src.shape[1])  # (B, S, H)
        if self.rnn.bidirectional:
            final = map_hidden(join_directions, final)
        return memory, final


class Decoder(nn.Module):
    def __init__(self, config):
        super().__init__()
        H = config.hidden_size
        self.embed = nn.Embedding(config.tgt_vocab_size, config.embed_dim)
        self.rnn = make_rnn(config, config.embed_dim)
        self.attention = make_attention(config.attention, H)
        self.combine = nn.Linear(2 * H, H) if self.attention is not None else None  # W_c
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, tgt, state):
        """tgt (B, T) -> decoder outputs (B, T, H) and the recurrent state after the last token."""
        s, hidden = self.rnn(self.dropout(self.embed(tgt)), state.hidden)  # (B, T, H)
        if self.attention is not None:
            context = self.attention(s, state.keys, state.memory, state.memory_key_padding_mask)  # (B, T, H)
            s = torch.tanh(self.combine(torch.cat([context, s], dim=-1)))  # (B, T, H)
        return self.dropout(s), hidden


@dataclass
class RNNState:
    """Everything `decode_step` needs. memory/keys/mask are None without attention."""
    memory: torch.Tensor | None  # (B, S, H) encoder states
    keys: torch.Tensor | None  # (B, S, K) encoder states projected for the score, computed once
    memory_key_padding_mask: torch.Tensor | None  # (B, S) True at padding
    hidden: torch.Tensor | tuple  # decoder recurrent state, (L, B, H) (a pair for the LSTM)
    position: int

    def select(self, index):
        """Keep/reorder batch rows, e.g. the surviving hypotheses of beam search."""
        pick = lambda t: None if t is None else t.index_select(0, index)
        return replace(self, memory=pick(self.memory), keys=pick(self.keys),
                       memory_key_padding_mask=pick(self.memory_key_padding_mask),
                       hidden=map_hidden(lambda h: h.index_select(1, index), self.hidden))


class RNNSeq2Seq(nn.Module):
    has_encoder = True

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.lm_head = nn.Linear(config.hidden_size, config.tgt_vocab_size)

    def forward(self, src, tgt_in):
        return self.lm_head(self.decoder(tgt_in, self.encode(src))[0])  # (B, T, V)

    def logits(self, src, tgt_in):
        """(B, T, V): the one call every model kind answers (see LanguageModel.logits)."""
        if src is None:
            raise ValueError("this model has an encoder: the batch needs source tokens")
        return self(src, tgt_in)

    def encode(self, src):
        src_padding = src == self.config.pad_id  # (B, S) True at padding
        memory, final = self.encoder(src, src_padding)  # (B, S, H)
        attention = self.decoder.attention
        if attention is None:
            return RNNState(None, None, None, final, 0)
        return RNNState(memory, attention.project_keys(memory), src_padding, final, 0)

    def decode_step(self, state, token):
        """Feed one token per row, (B,); return (B, V) logits and the new state (the old one stays valid)."""
        out, hidden = self.decoder(token[:, None], state)  # (B, 1, H)
        return self.lm_head(out[:, -1]), replace(state, hidden=hidden, position=state.position + 1)
