"""Recurrent encoder-decoder (RNN, GRU or LSTM): plain, with Bahdanau attention, or with Luong attention.

The same interface as the Transformer's EncoderDecoder, so training, decoding and the pages treat both alike:

    model(src, tgt_in) -> logits                       (B, T, V)
    state = model.encode(src)                          encoder states, projected keys, decoder's first state
    logits, state = model.decode_step(state, token)    one step of the decoder; the state has a fixed size

The encoder reads the source into states h_j; its final state (per layer) is the decoder's first state s_0.
`RNNConfig.attention` picks the decoder, each written as its paper writes it (i = output step, j = source position):

"none", Sutskever et al. (2014), "Sequence to sequence learning with neural networks":
    s_i = RNN(embed(y_{i-1}), s_{i-1})                 logits_i = W_o s_i
    The encoder's final state only initialises the decoder: one fixed-size vector carries the whole source.

"bahdanau", Bahdanau et al. (2015), "Neural machine translation by jointly learning to align and translate":
    e_ij = v^T tanh(W s_{i-1} + U h_j)                 the score reads the state *before* step i
    a_ij = softmax_j(e_ij)          c_i = sum_j a_ij h_j
    s_i = RNN([embed(y_{i-1}); c_i], s_{i-1})          the context is an input of the recurrence
    logits_i = W_o tanh(W_d [s_i; c_i; embed(y_{i-1})])
    The output layer is the paper's deep output g(y_{i-1}, s_i, c_i) with tanh in place of its maxout. Unlike the
    paper, s_0 is the encoder's final state (not tanh(W_s h_1) of the backward direction).

"luong-dot" / "luong-general" / "luong-concat", Luong et al. (2015), "Effective approaches to attention-based
neural machine translation", global attention:
    s_i = RNN(embed(y_{i-1}), s_{i-1}),  or with input feeding  s_i = RNN([embed(y_{i-1}); h~_{i-1}], s_{i-1}), h~_0 = 0
    score(s_i, h_j) = s_i^T h_j (dot),  s_i^T W_a h_j (general),  v_a^T tanh(W_a [s_i; h_j]) (concat)
    a_ij = softmax_j(score(s_i, h_j))    c_i = sum_j a_ij h_j      the score reads the state *after* step i
    h~_i = tanh(W_c [c_i; s_i])          logits_i = W_o h~_i

W_o, W_d and W_c have biases (which both papers leave out of their equations for clarity); the scores have none.
Where something of step i enters step i + 1 besides s_i (Bahdanau's context, Luong's input feeding), the decoder
runs step by step; otherwise its recurrence runs over the whole target in one call. The keys (U h_j, W_a h_j) are
computed once per source.

A bidirectional encoder gives each direction hidden_size // 2 units and concatenates them, so encoder
states and final states have hidden_size features either way. Sources are right-padded with
`config.pad_id`; packed sequences make padding change nothing at real positions.

Module names: `encoder.embed`, `encoder.rnn`, `decoder.embed`, `decoder.rnn`, `decoder.attention` (its score in
`decoder.attention.score`; hook points `decoder.attention.hook_pattern` (B, 1, Tq, Tk) and `decoder.attention.hook_z`
(B, Tq, 1, D), one "head"), `decoder.combine` (Luong's W_c), `decoder.deep_output` (Bahdanau's W_d), `lm_head` (W_o).
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


def top_layer(hidden):
    """The top layer's output state of a recurrent state, (B, H): h of an LSTM's (h, c), the state of RNN/GRU."""
    return (hidden[0] if isinstance(hidden, tuple) else hidden)[-1]


def join_directions(h):
    """(L * 2, B, H/2) final states of a bidirectional RNN -> (L, B, H), forward then backward per layer."""
    L2, B, half = h.shape
    return h.view(L2 // 2, 2, B, half).transpose(1, 2).reshape(L2 // 2, B, 2 * half)


def make_rnn(config, input_size, bidirectional=False):
    hidden_size = config.hidden_size // 2 if bidirectional else config.hidden_size
    return CELLS[config.cell](input_size, hidden_size, config.n_layers, batch_first=True,
                              dropout=config.dropout if config.n_layers > 1 else 0.0, bidirectional=bidirectional)


# --- scores: one number per (decoder query, encoder state) ----------------------------------------------------

class AdditiveScore(nn.Module):
    """v^T tanh(W s + U h): Bahdanau's e_ij, and Luong's "concat" v_a^T tanh(W_a [s; h]) with W_a = [W U]."""

    def __init__(self, query_size, key_size, size):
        super().__init__()
        self.q_proj = nn.Linear(query_size, size, bias=False)  # W
        self.k_proj = nn.Linear(key_size, size, bias=False)  # U
        self.v = nn.Linear(size, 1, bias=False)  # v

    def project_keys(self, memory):
        return self.k_proj(memory)  # (B, S, A)

    def forward(self, query, keys):
        hidden = torch.tanh(self.q_proj(query)[:, :, None] + keys[:, None])  # (B, Tq, S, A)
        return self.v(hidden)[..., 0]  # (B, Tq, S)


class DotScore(nn.Module):
    """Luong's "dot": s^T h."""

    def project_keys(self, memory):
        return memory  # (B, S, H)

    def forward(self, query, keys):
        return query @ keys.transpose(1, 2)  # (B, Tq, S)


class GeneralScore(DotScore):
    """Luong's "general": s^T W_a h (the keys W_a h are computed once per source)."""

    def __init__(self, query_size, key_size):
        super().__init__()
        self.k_proj = nn.Linear(key_size, query_size, bias=False)  # W_a

    def project_keys(self, memory):
        return self.k_proj(memory)  # (B, S, H)


LUONG_SCORES = {"luong-dot": lambda H: DotScore(), "luong-general": lambda H: GeneralScore(H, H),
                "luong-concat": lambda H: AdditiveScore(H, H, H)}


class Attention(nn.Module):
    """Softmax over the scores of each decoder query against all encoder states; the context is their weighted sum."""

    def __init__(self, score):
        super().__init__()
        self.score = score
        self.hook_pattern = HookPoint()  # (B, 1, Tq, Tk) attention weights, one head
        self.hook_z = HookPoint()  # (B, Tq, 1, D) context vectors, one head

    def forward(self, query, keys, memory, key_padding_mask, earlier=None):
        """query (B, Tq, Hq), keys (B, S, K) from `score.project_keys`, memory (B, S, D) -> the context (B, Tq, D)
        and `earlier` for the next step: (weights (B, 1, rows, S), contexts (B, rows, D)) of this pass so far.

        A decoder running step by step passes back what the previous step returned, so the hook points see every
        row so far: a capture of one forward pass ends with the whole (B, 1, T, S) alignment and (B, T, 1, D)
        contexts, as a Transformer's does. Each step's own context comes from its rows of the hooked pattern, and
        its rows of hook_z are what the decoder uses (so ablation acts at every step)."""
        Tq = query.shape[1]
        scores = self.score(query, keys).masked_fill(key_padding_mask[:, None, :], float("-inf"))  # (B, Tq, S)
        sees_nothing = key_padding_mask.all(dim=-1)[:, None, None]  # (B, 1, 1) an all-padding source: 0, not NaN
        weights = scores.softmax(dim=-1).masked_fill(sees_nothing, 0.0)[:, None]  # (B, 1, Tq, S)
        if earlier is not None:
            weights = torch.cat([earlier[0], weights], dim=2)  # (B, 1, rows, S)
        pattern = self.hook_pattern(weights)  # (B, 1, rows, S)
        contexts = pattern[:, 0, -Tq:] @ memory  # (B, Tq, D) the new rows
        if earlier is not None:
            contexts = torch.cat([earlier[1], contexts], dim=1)  # (B, rows, D)
        z = self.hook_z(contexts[:, :, None])  # (B, rows, 1, D)
        return z[:, -Tq:, 0], (weights, contexts)  # (B, Tq, D)


# --- decoders ---------------------------------------------------------------------------------------------------

class PlainDecoder(nn.Module):
    """Sutskever et al. (2014): s_i = RNN(embed(y_{i-1}), s_{i-1}); the output reads s_i, nothing else of the source."""

    def __init__(self, config):
        super().__init__()
        self.embed = nn.Embedding(config.tgt_vocab_size, config.embed_dim)
        self.rnn = make_rnn(config, config.embed_dim)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, tgt, state):
        """tgt (B, T) -> the states the output layer reads (B, T, H) and the state after the last token."""
        s, hidden = self.rnn(self.dropout(self.embed(tgt)), state.hidden)  # (B, T, H)
        return self.dropout(s), replace(state, hidden=hidden)


class BahdanauDecoder(nn.Module):
    """Bahdanau et al. (2015): attend with s_{i-1}, feed c_i into the step that makes s_i, output from (s_i, c_i, y)."""

    def __init__(self, config):
        super().__init__()
        H, E = config.hidden_size, config.embed_dim
        self.embed = nn.Embedding(config.tgt_vocab_size, E)
        self.attention = Attention(AdditiveScore(H, H, H))
        self.rnn = make_rnn(config, E + H)
        self.deep_output = nn.Linear(H + H + E, H)  # W_d of tanh(W_d [s_i; c_i; embed(y_{i-1})])
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, tgt, state):
        hidden, earlier, outputs = state.hidden, None, []
        for y in self.dropout(self.embed(tgt)).split(1, dim=1):  # (B, 1, E) per step
            c, earlier = self.attention(top_layer(hidden)[:, None], state.keys, state.memory,
                                        state.memory_key_padding_mask, earlier)  # (B, 1, H) from s_{i-1}
            s, hidden = self.rnn(torch.cat([y, c], dim=-1), hidden)  # (B, 1, H) s_i
            outputs.append(torch.tanh(self.deep_output(torch.cat([s, c, y], dim=-1))))  # (B, 1, H)
        return self.dropout(torch.cat(outputs, dim=1)), replace(state, hidden=hidden)  # (B, T, H)


class LuongDecoder(nn.Module):
    """Luong et al. (2015), global attention: attend with s_i after the step, h~_i = tanh(W_c [c_i; s_i]) feeds the
    output and, with input feeding, the next step's input."""

    def __init__(self, config):
        super().__init__()
        H, E = config.hidden_size, config.embed_dim
        self.input_feeding = config.input_feeding
        self.embed = nn.Embedding(config.tgt_vocab_size, E)
        self.rnn = make_rnn(config, E + H if self.input_feeding else E)
        self.attention = Attention(LUONG_SCORES[config.attention](H))
        self.combine = nn.Linear(2 * H, H)  # W_c
        self.dropout = nn.Dropout(config.dropout)

    def attentional(self, s, state, earlier=None):
        """s (B, Tq, H) -> h~ (B, Tq, H), and what the attention returns for the next step."""
        c, earlier = self.attention(s, state.keys, state.memory, state.memory_key_padding_mask, earlier)  # (B, Tq, H)
        return torch.tanh(self.combine(torch.cat([c, s], dim=-1))), earlier  # (B, Tq, H)

    def forward(self, tgt, state):
        embedded = self.dropout(self.embed(tgt))  # (B, T, E)
        if not self.input_feeding:  # nothing but s_i reaches the next step: the whole target in one call
            s, hidden = self.rnn(embedded, state.hidden)  # (B, T, H)
            return self.dropout(self.attentional(s, state)[0]), replace(state, hidden=hidden)
        hidden, feed, earlier, outputs = state.hidden, state.feed, None, []
        for y in embedded.split(1, dim=1):  # (B, 1, E) per step
            s, hidden = self.rnn(torch.cat([y, feed[:, None]], dim=-1), hidden)  # (B, 1, H) s_i
            h_tilde, earlier = self.attentional(s, state, earlier)  # (B, 1, H) h~_i
            feed = h_tilde[:, 0]  # (B, H)
            outputs.append(h_tilde)
        return self.dropout(torch.cat(outputs, dim=1)), replace(state, hidden=hidden, feed=feed)  # (B, T, H)


def make_decoder(config):
    if config.attention == "none":
        return PlainDecoder(config)
    return BahdanauDecoder(config) if config.attention == "bahdanau" else LuongDecoder(config)


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


@dataclass
class RNNState:
    """Everything `decode_step` needs; its size does not grow with the steps. memory/keys/mask are None without
    attention, feed is None without input feeding."""
    memory: torch.Tensor | None  # (B, S, H) encoder states
    keys: torch.Tensor | None  # (B, S, K) encoder states projected for the score, computed once
    memory_key_padding_mask: torch.Tensor | None  # (B, S) True at padding
    hidden: torch.Tensor | tuple  # decoder recurrent state, (L, B, H) (a pair for the LSTM)
    feed: torch.Tensor | None  # (B, H) Luong's h~_{i-1} for input feeding (zeros before the first step)
    position: int

    def select(self, index):
        """Keep/reorder batch rows, e.g. the surviving hypotheses of beam search."""
        pick = lambda t: None if t is None else t.index_select(0, index)
        return replace(self, memory=pick(self.memory), keys=pick(self.keys),
                       memory_key_padding_mask=pick(self.memory_key_padding_mask), feed=pick(self.feed),
                       hidden=map_hidden(lambda h: h.index_select(1, index), self.hidden))


class RNNSeq2Seq(nn.Module):
    has_encoder = True

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = make_decoder(config)
        self.lm_head = nn.Linear(config.hidden_size, config.tgt_vocab_size)  # W_o

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
        attention = getattr(self.decoder, "attention", None)
        if attention is None:
            return RNNState(None, None, None, final, None, 0)
        feed = memory.new_zeros(len(src), self.config.hidden_size) if self.config.input_feeding else None  # (B, H)
        return RNNState(memory, attention.score.project_keys(memory), src_padding, final, feed, 0)

    def decode_step(self, state, token):
        """Feed one token per row, (B,); return (B, V) logits and the new state (the old one stays valid)."""
        out, state = self.decoder(token[:, None], state)  # (B, 1, H)
        return self.lm_head(out[:, -1]), replace(state, position=state.position + 1)
