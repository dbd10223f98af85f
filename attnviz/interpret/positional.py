"""What positional encodings do: the shift matrix M_k, position similarity, and a model without its positions."""
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from attnviz.interpret.ablation import intervention_effect, summarise
from attnviz.models.hooks import forward_hooks
from attnviz.models.positional import PositionalEncoding, sinusoidal_frequencies


def shift_matrix(d_model, k):
    """M_k (D, D) with PE(pos + k) = M_k @ PE(pos) for the sinusoidal encoding, for every pos.

    From sin(w(p+k)) = sin(wp)cos(wk) + cos(wp)sin(wk) and cos(w(p+k)) = cos(wp)cos(wk) - sin(wp)sin(wk):
    each (sin, cos) pair of dimensions 2i, 2i+1 is rotated by the angle k * w_i, w_i = 10000^(-2i/D).
    M_k does not depend on pos, which is why a model can learn to attend by relative offset.
    """
    if d_model % 2:
        raise ValueError(f"d_model={d_model} is odd: the last sine has no cosine partner; use an even d_model")
    frequency = sinusoidal_frequencies(d_model)  # (D/2,)
    cos, sin = torch.cos(k * frequency), torch.sin(k * frequency)  # (D/2,)
    even = torch.arange(0, d_model, 2)
    matrix = torch.zeros(d_model, d_model, dtype=torch.float64)  # (D, D)
    matrix[even, even], matrix[even, even + 1] = cos, sin
    matrix[even + 1, even], matrix[even + 1, even + 1] = -sin, cos
    return matrix.float()


@contextmanager
def positional_ablation(model, mode, seed=0):
    """Inside the block the model's positional encodings are removed (`"remove"`) or handed out in a
    shuffled order (`"shuffle"`: each forward pass gives its tokens a random permutation of their own
    positions). Done with forward hooks: the model itself is not changed."""
    if mode not in ("remove", "shuffle"):
        raise ValueError(f"mode={mode!r}: choose 'remove' or 'shuffle'")
    encodings = [m for m in model.modules() if isinstance(m, PositionalEncoding) and m.table is not None]
    if not encodings:
        raise ValueError("this model has no positional encoding to remove or shuffle")
    generator = torch.Generator().manual_seed(seed)

    def hook(module, args, kwargs, output):
        x = args[0]  # (B, T, D) embeddings before the encoding was added
        if mode == "remove":
            return x
        offset = kwargs.get("offset", args[1] if len(args) > 1 else 0)
        order = torch.randperm(x.shape[1], generator=generator).to(x.device) + offset  # (T,)
        return x + module.table[order]

    with forward_hooks([(m, hook) for m in encodings], with_kwargs=True):
        yield


def positional_ablation_summary(model, batches, mode, seed=0):
    """`summarise` of removing or shuffling positional information on every batch (a test set)."""
    return summarise([intervention_effect(model, batch, lambda: positional_ablation(model, mode, seed))
                      for batch in batches])


def positional_similarity(table, cosine=False):
    """(T, T) dot products (or cosine similarities) between the positional encodings of every two positions."""
    table = torch.as_tensor(table).detach().float()  # (T, D)
    if cosine:
        table = F.normalize(table, dim=-1)
    return table @ table.T  # (T, T)


def shift_check(table, k):
    """(M_k, max |PE(pos + k) - M_k PE(pos)| over every pos of a (T, D) table): the shift demonstration.

    Near 0 for a sinusoidal table; a learned table has no such M_k, and the error shows it."""
    table = torch.as_tensor(table).detach().float()  # (T, D)
    if not 0 < k < table.shape[0]:
        raise ValueError(f"k={k} must be between 1 and {table.shape[0] - 1} (the table has {table.shape[0]} positions)")
    matrix = shift_matrix(table.shape[1], k)  # (D, D)
    predicted = table[:-k] @ matrix.T  # (T - k, D): row pos is M_k PE(pos)
    return matrix, (predicted - table[k:]).abs().max().item()


def positional_tables(model):
    """{module name: (kind, (max_len, D) table)} of every positional encoding the model adds; {} for none."""
    return {name: (module.kind, module.table.detach().float().cpu()) for name, module in model.named_modules()
            if isinstance(module, PositionalEncoding) and module.table is not None}
