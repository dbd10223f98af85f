"""Tables and marked-up text for the pages: the models table, and outputs with their errors marked. Headers and
the words in cells are in the session's language (attnviz.i18n); names of models, tasks and architectures stay."""
import html
import string

import pandas as pd

from attnviz.i18n import N_, _
from attnviz.interpret.comparison import error_marks
from attnviz.training.owners import owner_of, trained_by

MODEL_COLUMNS = [N_("model"), N_("from"), N_("architecture"), N_("task"), N_("size"), N_("test result")]

MARK_STYLES = {"ok": "", "wrong": "background:#f6b8b8", "extra": "background:#fcd9a8",
               "missing": "background:#ddd;color:#777"}


def marked_html(output, expected=None):
    """`output` as HTML inline code, each character coloured by its `error_marks` status (unmarked without `expected`)."""
    marks = error_marks(output, expected) if expected is not None else [(ch, "ok") for ch in output]
    return "<code>" + "".join(f'<span style="{MARK_STYLES[status]}">{literal_html(ch)}</span>'
                              for ch, status in marks) + "</code>"


def literal_html(ch):
    """One character as HTML text that Markdown leaves as it is: &, <, > and quotes as entities, other punctuation as
    a numeric reference (a `*` or `$` between the spans would start emphasis or a formula)."""
    escaped = html.escape(ch)
    return f"&#{ord(ch)};" if escaped == ch and ch in string.punctuation else escaped


def models_table(infos, owner):
    """One row per checkpoint: where it comes from (shipped, yours for `owner`'s, else who trained it), what it is,
    and how well it did on its test split."""
    rows = []
    for info in infos:
        meta, config = info.meta, info.meta.get("config") or {}
        rows.append({
            "model": info.name,
            "from": _("shipped") if info.shipped else _("yours") if owner_of(meta) == owner
            else _("by {who}").format(who=trained_by(meta)),
            "architecture": meta.get("architecture", "?"),
            "task": (meta.get("task") or {}).get("name", "?"),
            "size": model_size(config),
            "test result": test_result(meta.get("metrics") or {}),
        })
    return pd.DataFrame(rows, columns=MODEL_COLUMNS).rename(columns=_)


def model_size(config):
    if "d_model" in config:  # a Transformer
        encoder, decoder = config.get("n_encoder_layers", 0), config.get("n_decoder_layers", 0)
        layers = _("{encoder} encoder + {decoder} decoder layers") if encoder and decoder \
            else _("{encoder} encoder layers") if encoder else _("{decoder} decoder layers (LM)")
        return _("d_model {d_model}, {heads} heads, {layers}").format(
            d_model=config["d_model"], heads=config.get("n_heads"),
            layers=layers.format(encoder=encoder, decoder=decoder))
    if "hidden_size" in config:  # an RNN
        attention = {"none": _("none (Sutskever)"), "bahdanau": "Bahdanau"}.get(config.get("attention"),
                                                                             str(config.get("attention")))
        size = _("{cell} {hidden}, attention: {attention}, input feeding") if config.get("input_feeding") \
            else _("{cell} {hidden}, attention: {attention}")
        return size.format(cell=config.get("cell", "").upper(), hidden=config["hidden_size"], attention=attention)
    return ""


def test_result(metrics):
    if "exact_match" in metrics:
        return _("exact match {value}").format(value=f"{metrics['exact_match']:.1%}")
    if "perplexity" in metrics:
        return _("perplexity {value}").format(value=f"{metrics['perplexity']:.2f}")
    if "token_accuracy" in metrics:
        return _("token accuracy {value}").format(value=f"{metrics['token_accuracy']:.1%}")
    return ""
