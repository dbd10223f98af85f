"""Next-token distributions from logits: temperature, top-k, top-p (nucleus), and their entropy."""
import torch
import torch.nn.functional as F

from attnviz.i18n import _


def check_sampling(temperature=1.0, top_k=None, top_p=None):
    """Raise a ValueError a user understands (in the session's language) for impossible sampling settings."""
    if not (isinstance(temperature, (int, float)) and temperature >= 0):
        raise ValueError(_("temperature={temperature} is not possible: use 0 (always the most likely token) or "
                           "more").format(temperature=temperature))
    if top_k is not None and (not isinstance(top_k, int) or top_k < 0):
        raise ValueError(_("top_k={top_k} is not possible: use a whole number (0 or None: no limit)").format(
            top_k=top_k))
    if top_p is not None and not (isinstance(top_p, (int, float)) and 0 < top_p <= 1):
        raise ValueError(_("top_p={top_p} is not possible: use a probability in (0, 1] (1 or None: no limit)").format(
            top_p=top_p))


def distribution(logits, temperature=1.0, top_k=None, top_p=None):
    """Next-token probabilities (..., V) from raw logits (..., V): temperature, then top-k, then top-p.

    temperature 0 puts all mass on the most likely token. top-k keeps the k largest logits (and any tied
    with the k-th). top-p (nucleus) keeps the smallest set of most likely tokens whose probability
    reaches p. None or 0 for top_k, and None or 1 for top_p, mean no limit.
    """
    check_sampling(temperature, top_k, top_p)
    logits = logits.float()
    if temperature == 0:
        return F.one_hot(logits.argmax(-1), logits.shape[-1]).float()  # (..., V)
    logits = logits / temperature
    if top_k and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]  # (..., 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = logits.softmax(-1)  # (..., V)
    if top_p is not None and top_p < 1:
        ranked, order = probs.sort(-1, descending=True)  # (..., V)
        mass_before = ranked.cumsum(-1) - ranked  # probability of all more likely tokens
        drop = (mass_before >= top_p).scatter(-1, order, mass_before >= top_p)  # back to vocabulary order
        probs = probs.masked_fill(drop, 0.0)
        probs = probs / probs.sum(-1, keepdim=True)
    return probs


def entropy(probs):
    """Entropy in nats of (..., V) distributions, (...)."""
    return torch.special.entr(probs).sum(-1)
