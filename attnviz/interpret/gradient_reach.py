"""gradient_by_distance(model, src_ids, tgt_in, token=None, of="logit") -> DataFrame: how much the last output step
depends on each source position, as the gradient norm of the chosen token's logit (or log-probability) w.r.t. that
position's input embedding. text_gradient_by_distance(model, tokenizer, src_text, tgt_text) does it for texts.

The RNN's limit, measured (Bengio et al. 1994; Hochreiter 1991): in a recurrent model the last output reaches source
position j only through every step in between, and the gradient is a product of one Jacobian per step, so it tends
to shrink (or grow) with the distance. Attention connects every position to every output in one step, so distance
alone does not weaken the gradient. Time steps are counted as the recurrence runs: the encoder reads source token j
at step j, the decoder makes output i at step S + i, so the last output (i = T - 1) is S + T - 1 - j steps from j.

The gradient is taken w.r.t. the token embedding (before any positional encoding) through a forward hook that acts in
this context only (`attnviz.models.hooks.forward_hooks`), so a model shared by many sessions stays untouched. The
model is used as it is (a loaded checkpoint is in eval mode: no dropout).
"""
import pandas as pd
import torch

from attnviz.i18n import _
from attnviz.interpret.comparison import source_ids
from attnviz.models.hooks import forward_hooks


def source_embedding(model):
    """The nn.Embedding that turns source ids into vectors: `encoder.embed.tokens` (Transformer) or
    `encoder.embed` (RNN)."""
    encoder = getattr(model, "encoder", None)
    if encoder is None or not getattr(model, "has_encoder", False):
        raise ValueError("gradient_by_distance needs an encoder-decoder model: a language model has no source")
    return getattr(encoder.embed, "tokens", encoder.embed)


def one_row(ids, name):
    """(S,) or (1, S) ids -> (1, S); a batch of several rows is refused (each would need its own frame)."""
    ids = ids[None] if ids.dim() == 1 else ids
    if ids.dim() != 2 or ids.shape[0] != 1:
        raise ValueError(f"{name} must be one sequence, (S,) or (1, S); got shape {tuple(ids.shape)}")
    return ids


def gradient_by_distance(model, src_ids, tgt_in, token=None, of="logit"):
    """One row per source position j: `position`, `distance` (time steps from j to the last output, see above),
    `gradient` = ||d score / d embed(src_j)||_2 and `relative` = gradient / its largest value.

    The score is the last step's logit of `token` (`of="logit"`) or its log-probability (`of="log_prob"`, which
    also fades wherever the model is sure: its gradient carries a factor 1 - p). `token` defaults to the one the
    model picks at the last step (its argmax). `src_ids` is one source (S,) or (1, S) (no padding), `tgt_in` the
    decoder's input."""
    if of not in ("logit", "log_prob"):
        raise ValueError(f"of={of!r}: choose 'logit' or 'log_prob'")
    device = next(model.parameters()).device
    src, tgt = one_row(src_ids, "src_ids").to(device), one_row(tgt_in, "tgt_in").to(device)
    S, T = src.shape[1], tgt.shape[1]
    embedded = {}

    def as_leaf(module, args, output):  # the embedding's output, cut from the weights: the gradient stops here
        embedded["x"] = output.detach().requires_grad_(True)  # (1, S, E)
        return embedded["x"]

    # cuDNN's RNN backward runs only in training mode: the plain kernels give the same gradient in eval mode (the
    # switch is process-wide for the block; a pass of another session meanwhile gets the same numbers either way)
    with torch.enable_grad(), torch.backends.cudnn.flags(enabled=False), \
            forward_hooks([(source_embedding(model), as_leaf)]):
        logits = model(src, tgt)[0, -1].float()  # (V,) the last step
        chosen = int(logits.argmax()) if token is None else int(token)
        score = logits[chosen] if of == "logit" else logits.log_softmax(-1)[chosen]
        (grad,) = torch.autograd.grad(score, embedded["x"])  # (1, S, E)
    norms = grad[0].float().norm(dim=-1).cpu()  # (S,)
    positions = torch.arange(S)
    return pd.DataFrame({"position": positions.numpy(), "distance": (S + T - 1 - positions).numpy(),
                         "gradient": norms.numpy(), "relative": (norms / norms.max().clamp(min=1e-30)).numpy()})


def text_gradient_by_distance(model, tokenizer, src_text, tgt_text):
    """`gradient_by_distance` for the last token of `tgt_text` (teacher-forced: the decoder reads BOS and the tokens
    before it), so models compared on one target are measured at the same output step."""
    target = tokenizer.encode(tgt_text)
    if not target:
        raise ValueError(_("the target is empty: there is no output step to take the gradient of"))
    src = torch.tensor(source_ids(tokenizer, src_text, model.config.max_len))  # (S,)
    tgt_in = torch.tensor([tokenizer.bos_id] + target[:-1])  # (T,)
    return gradient_by_distance(model, src, tgt_in, token=target[-1])
