"""Captured attention as files: a long-form CSV table and a NumPy .npz of the tensors."""
import io

import numpy as np
import pandas as pd

from attnviz.interpret.patterns import parse_pattern_name


def patterns_table(cache, src_labels=None, tgt_labels=None, row=0):
    """Every captured weight of batch row `row` in long form (for a CSV download): name, kind, layer, head,
    query, query_token, key, key_token, weight. Token labels are optional, as in `head_stats_table`."""
    frames = []
    for name, pattern in cache.items():
        if not name.endswith("hook_pattern"):
            continue
        kind, layer, _ = parse_pattern_name(name)
        H, Tq, Tk = pattern.shape[1:]
        query_labels = src_labels if kind == "encoder self" else tgt_labels
        key_labels = tgt_labels if kind == "decoder self" else src_labels
        head, query, key = np.meshgrid(np.arange(H), np.arange(Tq), np.arange(Tk), indexing="ij")  # (H, Tq, Tk)
        frame = pd.DataFrame(dict(name=name, kind=kind, layer=layer, head=head.ravel(), query=query.ravel(),
                                  key=key.ravel(), weight=pattern[row].float().cpu().numpy().ravel()))
        if query_labels is not None:
            frame.insert(5, "query_token", np.asarray(list(query_labels)[-Tq:], dtype=object)[frame["query"]])
        if key_labels is not None:
            frame.insert(len(frame.columns) - 1, "key_token", np.asarray(list(key_labels), dtype=object)[frame["key"]])
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def npz_bytes(cache):
    """The captured tensors as a compressed NumPy .npz file (bytes), keyed by hook name."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{name: tensor.float().cpu().numpy() for name, tensor in cache.items()})
    return buffer.getvalue()
