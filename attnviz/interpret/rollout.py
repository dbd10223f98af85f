"""Attention rollout (Abnar & Zuidema, 2020): how much each position draws on each input token, estimated."""
import torch


def attention_rollout(patterns):
    """Rollout through a self-attention stack: (L, ..., H, T, T) -> (L, ..., T, T); see ROLLOUT_CAPTION.

    Per layer A_hat = 0.5 * mean over heads(A) + 0.5 * I, rows renormalised; entry l of the result is
    A_hat_l @ ... @ A_hat_0, how much position i after layer l draws on input token j (rows sum to 1).
    """
    patterns = torch.stack(list(patterns)) if isinstance(patterns, (list, tuple)) else torch.as_tensor(patterns)
    patterns = patterns.detach().float()
    if patterns.dim() < 4 or patterns.shape[-1] != patterns.shape[-2]:
        raise ValueError("rollout needs square self-attention patterns shaped (layers, heads, T, T); "
                         f"got {tuple(patterns.shape)} (cross-attention cannot be rolled out)")
    T = patterns.shape[-1]
    mixed = 0.5 * patterns.mean(-3) + 0.5 * torch.eye(T, device=patterns.device)  # (L, ..., T, T)
    mixed = mixed / mixed.sum(-1, keepdim=True)
    rollout, result = [], None
    for layer in mixed:
        result = layer if result is None else layer @ result  # (..., T, T)
        rollout.append(result)
    return torch.stack(rollout)  # (L, ..., T, T)
