"""Tables and marked-up text for the pages: the models table, and outputs with their errors marked."""
import html

import pandas as pd

from attnviz.interpret.comparison import error_marks
from attnviz.training.owners import owner_of, trained_by


MARK_STYLES = {"ok": "", "wrong": "background:#f6b8b8", "extra": "background:#fcd9a8",
               "missing": "background:#ddd;color:#777"}


def marked_html(output, expected=None):
    """`output` as HTML inline code, each character coloured by its `error_marks` status (unmarked without `expected`)."""
    marks = error_marks(output, expected) if expected is not None else [(ch, "ok") for ch in output]
    return "<code>" + "".join(f'<span style="{MARK_STYLES[status]}">{html.escape(ch)}</span>'
                              for ch, status in marks) + "</code>"


def models_table(infos, owner):
    """One row per checkpoint: where it comes from (shipped, yours for `owner`'s, else who trained it), what it is,
    and how well it did on its test split."""
    rows = []
    for info in infos:
        meta, config = info.meta, info.meta.get("config") or {}
        rows.append({
            "model": info.name,
            "from": "shipped" if info.shipped else "yours" if owner_of(meta) == owner else f"by {trained_by(meta)}",
            "architecture": meta.get("architecture", "?"),
            "task": (meta.get("task") or {}).get("name", "?"),
            "size": model_size(config),
            "test result": test_result(meta.get("metrics") or {}),
        })
    return pd.DataFrame(rows, columns=["model", "from", "architecture", "task", "size", "test result"])


def model_size(config):
    if "d_model" in config:  # a Transformer
        encoder, decoder = config.get("n_encoder_layers", 0), config.get("n_decoder_layers", 0)
        parts = [f"{encoder} encoder" if encoder else "", f"{decoder} decoder" if decoder else ""]
        layers = " + ".join(p for p in parts if p) + " layers" + ("" if encoder else " (LM)")
        return f"d_model {config['d_model']}, {config.get('n_heads')} heads, {layers}"
    if "hidden_size" in config:  # an RNN
        attention = {"none": "none (Sutskever)", "bahdanau": "Bahdanau"}.get(config.get("attention"),
                                                                          str(config.get("attention")))
        feeding = ", input feeding" if config.get("input_feeding") else ""
        return f"{config.get('cell', '').upper()} {config['hidden_size']}, attention: {attention}{feeding}"
    return ""


def test_result(metrics):
    if "exact_match" in metrics:
        return f"exact match {metrics['exact_match']:.1%}"
    if "perplexity" in metrics:
        return f"perplexity {metrics['perplexity']:.2f}"
    if "token_accuracy" in metrics:
        return f"token accuracy {metrics['token_accuracy']:.1%}"
    return ""
