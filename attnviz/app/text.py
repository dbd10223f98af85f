"""Page prose that is longer than a label: captions, formulas (LaTeX) and the sentences built from results.

The constants are English, marked for the catalog (`N_`): a page shows them translated, `_(ROLLOUT_CAPTION)`; a
formula's words are translated with it, its LaTeX stays as it is. The functions answer in the session's language.
"""
from attnviz.i18n import N_, _

ROLLOUT_CAPTION = N_(
    "Attention rollout (Abnar & Zuidema, 2020) multiplies the layers' head-averaged attention, each mixed "
    "half-and-half with the identity for the residual connection, to estimate how much each output position "
    "draws on each input token. It is an estimate: it ignores the values, the output projection and the MLPs, "
    "assumes information mixes linearly and equally across heads, and covers one self-attention stack "
    "(cross-attention is not included). Read it as a hint, not as an explanation."
)
MECHANICS_FORMULAS = {  # step name -> what it is, in LaTeX; `head_mechanics` fills them in this order
    "X": N_(r"X \in \mathbb{R}^{T_q \times d_{model}} \text{ (the attention layer's input)}"),
    "X_kv": N_(r"X_{kv} \in \mathbb{R}^{T_k \times d_{model}} \text{ (what the queries look at)}"),
    "W_Q": r"W^Q_h \in \mathbb{R}^{d_{model} \times d_k}",
    "W_K": r"W^K_h \in \mathbb{R}^{d_{model} \times d_k}",
    "W_V": r"W^V_h \in \mathbb{R}^{d_{model} \times d_k}",
    "Q": r"Q_h = X W^Q_h + b^Q_h",
    "K": r"K_h = X_{kv} W^K_h + b^K_h",
    "V": r"V_h = X_{kv} W^V_h + b^V_h",
    "QK^T": r"S_h = Q_h K_h^\top",
    "scaled": r"S_h / \sqrt{d_k}",
    "masked": N_(r"S_h / \sqrt{d_k} + M, \quad M_{ij} = -\infty \text{ where key } j \text{ is blocked}"),
    "weights": N_(r"A_h = \mathrm{softmax}\left(S_h / \sqrt{d_k} + M\right) \text{ (row by row)}"),
    "Z": r"Z_h = A_h V_h",
    "concat": r"Z = [Z_1 \; Z_2 \; \cdots \; Z_H]",
    "W_O": r"W^O \in \mathbb{R}^{d_{model} \times d_{model}}",
    "output": r"\mathrm{MultiHead}(X) = Z W^O + b^O",
}
LENGTH_CLAIM = N_("Bahdanau et al. (2015) found that squeezing a whole sentence into one fixed-size vector gets "
                  "worse as sentences get longer, and that attention fixes it.")
BEYOND_TEXT = N_(
    "Here are the models on fresh examples of every length. The plain LSTM must carry the whole input in its final "
    "state, so each extra letter crowds the others out and its exact match falls with length; the attention models "
    "look every letter up again when they need it. Outside the green band every model is on new ground, and the "
    "Transformer meets positions it never saw in training.")
GROUPED_TEXT = N_("Here the test set is grouped by the length of the source: all of these lengths occur in "
                  "training.")
LENGTH_SOURCES = N_(
    "Fresh examples of each length (200 where that many exist), scored as greedy decoding would. Cho et al. (2014, "
    "“On the properties of neural machine translation: encoder-decoder approaches”) saw an encoder-decoder "
    "without attention fail on long sentences; Bahdanau et al. (2015, “Neural machine translation by jointly "
    "learning to align and translate”) added attention and the fall went away.")


def trend(rows, low, high, metric="exact_match"):
    """One sentence: each model's `metric` at lengths `low` and `high`, from {label: rows of accuracy_by_length}."""
    at = lambda rs, length: next((r[metric] for r in rs if r["length"] == length and r[metric] is not None), None)
    parts = [f"{label} {at(rs, low):.0%} → {at(rs, high):.0%}" for label, rs in rows.items()
             if at(rs, low) is not None and at(rs, high) is not None]
    return _("Exact match from length {low} to length {high}: {models}.").format(
        low=low, high=high, models=", ".join(parts)) if parts else ""


COST_NOTE = N_(
    "One forward pass of batch 1, source and target of the same length, on this machine's device, with the "
    "model's own sizes. Attention weights: every head scores every query against every key, T × T per attention "
    "module, so they grow with the square of the length; the Transformer has three attention modules (encoder "
    "self-, decoder self- and cross-attention), the LSTM with Bahdanau attention one, the plain LSTM none. Activations: the "
    "bytes a training step keeps from the forward pass for the backward pass. PyTorch's fused attention kernel "
    "computes all T × T weights but never stores them, so the Transformer's activations grow about linearly; "
    "the additive attention of the LSTM keeps a T × T × hidden tensor. Time is wall-clock, the fastest of "
    "several passes: other work on a busy machine still makes it noisy.")
MARKS_NOTE = N_("Red: wrong character, orange: one too many, grey: missing.")


def rollout_title(upto):
    """The rollout chart's title: through layers 0 to `upto`, or of layer 0 alone (a one-layer stack)."""
    if upto == 0:
        return _("Rollout of layer 0 alone: its heads' mean, mixed half-and-half with the identity")
    return _("Rollout through layers 0–{upto}").format(upto=upto)
