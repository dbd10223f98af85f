"""padding_check(model, texts, task) -> PaddingCheck: several inputs of different lengths in one right-padded batch,
its key-padding mask, and the proof on real numbers that padding changes no output at a real position.

A batch is a rectangle, so shorter sequences are filled up with PAD. The encoder's self-attention and the decoder's
cross-attention get the key-padding mask (True at PAD, `src == pad_id`): a blocked key gets -inf before the softmax,
hence weight exactly 0, so nothing of a PAD position reaches a real one. The decoder's input is right-padded too;
its causal mask already keeps every real position from the later PAD ones. The check runs each input alone and in
the batch and compares the logits at the real target positions; it does the same with the key-padding mask left
out, where the difference shows what the mask prevents (so the check can fail).

The comparison runs on a float64 copy of the model (the same weights): in float32 a batch of another size may take
other kernels and round differently, about 1e-5 on these logits even for a row without padding, which would blur
what is being shown. In float64 the rounding is about 1e-13, and any difference above it comes from the padding.
"""
import copy
from dataclasses import dataclass

import pandas as pd
import torch

from attnviz.data.batch import pad_rows
from attnviz.interpret.input_run import model_device, run_input
from attnviz.models.transformer import EncoderDecoder


@dataclass
class PaddingCheck:
    src: torch.Tensor  # (B, S) the padded batch of sources
    tgt_in: torch.Tensor  # (B, T) the padded batch of decoder inputs (BOS + each input's greedy output)
    key_padding_mask: torch.Tensor  # (B, S) True at PAD: what the encoder and the cross-attention may not look at
    src_labels: list  # per row, the label of every token of `src` (PAD included)
    table: pd.DataFrame  # per input: text, tokens, padding added, max |difference| with and without the mask


def logits_without_mask(model, src, tgt_in):
    """(B, T, V): the encoder-decoder's forward pass with no key-padding mask anywhere, PAD read as a token."""
    memory = model.encoder(src, None)  # (B, S, D)
    return model.lm_head(model.decoder(tgt_in, memory, None))  # (B, T, V)


@torch.no_grad()
def padding_check(model, texts, task):
    """Run each of `texts` alone and all of them in one padded batch through a Transformer encoder-decoder."""
    if not isinstance(model, EncoderDecoder):
        raise ValueError("padding_check needs a Transformer encoder-decoder: its key-padding mask is what is checked")
    if len(texts) < 2:
        raise ValueError("padding_check needs at least two inputs: one alone has no padding")
    runs = [run_input(model, task, text) for text in texts]
    device = model_device(model)
    model = copy.deepcopy(model).double()  # the shared model is only read
    src = pad_rows([run.src[0].tolist() for run in runs]).to(device)  # (B, S)
    tgt_in = pad_rows([run.tgt_in[0].tolist() for run in runs]).to(device)  # (B, T)
    key_padding_mask = src == model.config.pad_id  # (B, S) the mask the model builds for itself
    batched, unmasked = model(src, tgt_in), logits_without_mask(model, src, tgt_in)  # (B, T, V)
    rows = []
    for b, run in enumerate(runs):
        S, T = run.src.shape[1], run.tgt_in.shape[1]
        alone = model(run.src.to(device), run.tgt_in.to(device))[0]  # (T, V)
        rows.append({"input": run.text, "tokens": S, "padding": src.shape[1] - S,
                     "max |difference|": (batched[b, :T] - alone).abs().max().item(),
                     "without the mask": (unmasked[b, :T] - alone).abs().max().item()})
    labels = [task.tokenizer.labels(row) for row in src.cpu()]
    return PaddingCheck(src.cpu(), tgt_in.cpu(), key_padding_mask.cpu(), labels, pd.DataFrame(rows))
