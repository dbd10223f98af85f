"""A batch of right-padded token tensors; masks follow from PAD."""
from dataclasses import dataclass

import torch

from attnviz.data.tokenizers import PAD


@dataclass
class Batch:
    """Token tensors for one step. Masks follow from PAD: `src == PAD` is the source padding mask."""

    src: torch.Tensor | None  # (B, S) source tokens + EOS, then PAD; None for a language model
    tgt_in: torch.Tensor  # (B, T) BOS + target (decoder input)
    tgt_out: torch.Tensor  # (B, T) target + EOS, then PAD (what to predict; the loss ignores PAD)

    def to(self, device):
        src = None if self.src is None else self.src.to(device)
        return Batch(src, self.tgt_in.to(device), self.tgt_out.to(device))

    @property
    def n_tokens(self):
        """Number of target positions that count in the loss."""
        return int((self.tgt_out != PAD).sum())


def pad_rows(rows):
    width = max(len(row) for row in rows)
    return torch.tensor([row + [PAD] * (width - len(row)) for row in rows], dtype=torch.long)  # (B, width)
