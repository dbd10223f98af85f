"""The live figures of the course's lessons, from library functions on shipped models (the RNN's limits, the LSTM's
gates, the √d_k and padding lessons draw the figures of `lesson_figures`).

Every figure function takes the lesson's input values ({input key: value}) and returns a `LessonFigure`: one plotly
figure and a sentence of what it shows, with the numbers. They compute on the shipped checkpoints, loaded once per
process and only read; a ValueError says what is wrong with the learner's input. Figures, captions and errors are
in the session's language (attnviz.i18n).
"""
import functools
import math
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch

from attnviz.app import figures, lesson_figures
from attnviz.app.lesson_figures import escaped
from attnviz.app.markdown import code
from attnviz.data.tokenizers import BOS, PAD, SPECIAL_LABELS
from attnviz.decoding.sampling import distribution
from attnviz.i18n import N_, _
from attnviz.interpret.gradient_reach import text_gradient_by_distance
from attnviz.interpret.head_types import induction_score, self_attention_patterns
from attnviz.interpret.input_run import run_input
from attnviz.interpret.lstm_gates import text_lstm_gates
from attnviz.interpret.mechanics import head_mechanics
from attnviz.interpret.padding import padding_check
from attnviz.interpret.patterns import patterns_of
from attnviz.interpret.scaling import dot_product_stats
from attnviz.models.positional import sinusoidal_table
from attnviz.training import checkpoint_folder
from attnviz.training.checkpoint import load_checkpoint

MAX_TOKENS = 12  # the numbers of a 12 x 12 heatmap still fit into its cells
TOP_TOKENS = 10  # bars in the next-token chart
D_KS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)  # the √d_k lesson's key sizes
CONTENDERS = {"Transformer": "reverse-long-transformer", N_("LSTM + Bahdanau attention"): "reverse-long-lstm-bahdanau",
              N_("Plain LSTM"): "reverse-long-lstm", N_("Plain RNN (tanh)"): "reverse-long-rnn"}  # 4 to 24 letters


@dataclass
class LessonFigure:
    figure: go.Figure
    caption: str  # what the figure shows, with its numbers (Markdown of our own; no user text)


@functools.lru_cache(maxsize=16)
def shipped(name):
    """A shipped checkpoint (checkpoints/NAME), loaded once per process and shared: read it, never modify it."""
    return load_checkpoint(checkpoint_folder.SHIPPED_DIR / name)


@functools.lru_cache(maxsize=1)
def minilm():
    """The pretrained MiniLM (a pip package), loaded once per process; ImportError when it is not installed."""
    from attnviz.models import pretrained
    if not pretrained.minilm_available():
        raise ImportError(_("the pretrained MiniLM is not installed: {hint}").format(hint=pretrained.INSTALL_HINT))
    return pretrained.load_minilm()


def unknown_note(task, text):
    """A sentence to append to a caption (with its leading space, which Chinese goes without), or ""."""
    unknown = task.unknown_characters(text)
    return _(" The model does not know {characters}: it reads them as `<unk>`.").format(
        characters=", ".join(map(code, unknown))) if unknown else ""


# ---------------------------------------------------------------------------------------------
# Sequences and hidden states


@torch.no_grad()
def hidden_states(values, model_name="reverse-lstm"):
    """The LSTM encoder's hidden state h_t after each token of the input: (steps, units)."""
    picked = shipped(model_name)
    task = picked.task()
    src = task.encode_source(values["text"], MAX_TOKENS + 1)  # (1, S): letters + EOS
    states, _final = picked.model.encoder(src, src == PAD)  # (1, S, H), the final state unused
    labels = escaped(task.tokenizer.labels(src[0]))
    figure = figures.matrix_heatmap(states[0], labels, None, _("Hidden state h_t after each step"),
                                    x_title=_("unit"), y_title=_("step (token read)"), value_name="h_t",
                                    diverging=True, show_values=False)
    return LessonFigure(figure, _("{model}'s encoder, {units} units, {steps} steps: row t is what it carries after "
                                  "reading token t.").format(model=model_name, units=states.shape[2], steps=len(labels))
                        + unknown_note(task, values["text"]))


# ---------------------------------------------------------------------------------------------
# The RNN's limits and the LSTM's gates


def gradient_reach(values):
    """The gradient of the last output w.r.t. each input, by distance, for a Transformer, two LSTMs and a plain RNN
    reversing the same letters (the last output is the first letter, the farthest input)."""
    text = values["text"]
    frames = {label: text_gradient_by_distance(shipped(name).model, shipped(name).tokenizer, text, text[::-1])
              for label, name in CONTENDERS.items()}
    ratios = {label: frame["gradient"].iloc[0] / frame["gradient"].iloc[-2] for label, frame in frames.items()}
    return LessonFigure(lesson_figures.gradient_reach({_(label): frame for label, frame in frames.items()}),
                        _("The last output copies the first of the {letters} letters, {steps} steps away. Gradient on "
                          "the first letter ÷ gradient on the last letter: {ratios}.").format(
                            letters=len(text), steps=frames["Plain LSTM"]["distance"].max(),
                            ratios=", ".join(f"{_(label)} {ratio:.2g}" for label, ratio in ratios.items())))


def lstm_gates(values, model_name="reverse-lstm"):
    """One gate (or the cell state) of the plain LSTM's encoder at each step of the input: units x steps."""
    picked = shipped(model_name)
    gates, tokens = text_lstm_gates(picked.model, picked.tokenizer, values["text"])
    gate = values["gate"]
    forget, cell = gates["forget"].mean(1), np.abs(gates["cell"]).max(1)  # (T,) each
    return LessonFigure(lesson_figures.lstm_gate_maps({gate: gates[gate]}, tokens)[gate],
                        _("{model}'s encoder, {units} units. Mean forget gate {first_forget} at the first step, "
                          "{last_forget} at the last; the largest |c_t| goes from {first_cell} at the first step to "
                          "{last_cell} at the last.").format(
                            model=model_name, units=gates[gate].shape[1], first_forget=f"{forget[0]:.2f}",
                            last_forget=f"{forget[-1]:.2f}", first_cell=f"{cell[0]:.1f}", last_cell=f"{cell[-1]:.1f}"))


# ---------------------------------------------------------------------------------------------
# Attention in a Transformer: one head, all heads, the three kinds


def transformer_run(model_name, text, max_tokens=MAX_TOKENS):
    picked = shipped(model_name)
    return picked, run_input(picked.model, picked.task(), text, max_tokens)


def query_key_value(values, model_name="reverse-transformer", module="encoder.layers.0.self_attn"):
    """One head's attention weights softmax(QKᵀ/√d_k) on the input, computed step by step from its weights."""
    picked, run = transformer_run(model_name, values["text"])
    head = int(values["head"])
    by_hand = head_mechanics(picked.model, lambda: run.forward(picked.model), module, head)
    d_k = by_hand.steps["Q"].shape[1]
    labels = escaped(run.src_labels)
    figure = figures.attention_heatmap(by_hand.steps["weights"], labels, labels,
                                       _("Encoder self-attention, head {head}").format(head=head),
                                       show_values=len(labels) <= MAX_TOKENS)
    return LessonFigure(figure, _("Each row is one token's query scored against every key, divided by √{d_k} = "
                                  "{root} and passed through the softmax: its weights sum to 1. Computed here from W^Q "
                                  "and W^K; the weights the model's hook captured differ by at most {error}.").format(
                                    d_k=d_k, root=f"{math.sqrt(d_k):.0f}", error=f"{by_hand.weights_error:.0e}")
                        + unknown_note(picked.task(), values["text"]))


def multi_head(values, model_name="dates-transformer"):
    """Every head of the cross-attention on the input: each head its own pattern over the same tokens."""
    picked, run = transformer_run(model_name, values["text"], max_tokens=24)
    patterns = patterns_of(run.cache, "cross")  # (L, H, Tq, Tk)
    L, H = patterns.shape[:2]
    figure = figures.attention_grid(
        patterns, _("{heads} heads of cross-attention: row = output step, column = source").format(heads=H))
    return LessonFigure(figure, _("{model} wrote {output}. Each of its {heads} heads has its own W^Q, W^K, W^V of "
                                  "{columns} columns; W^O mixes their {heads} outputs back into {d_model} "
                                  "numbers.").format(
                                    model=model_name, output=code(run.output), heads=H,
                                    columns=picked.config.d_model // H, d_model=picked.config.d_model)
                        + unknown_note(picked.task(), values["text"]))


def attention_kinds(values, model_name="reverse-transformer"):
    """One head of one attention kind: encoder self (all to all), decoder self (causal) or cross."""
    picked, run = transformer_run(model_name, values["text"])
    kind, head = values["attention"], int(values["head"])
    queries, keys = map(escaped, run.labels(kind))
    titles = {"encoder self": _("Encoder self-attention, layer 0, head {head}"),
              "decoder self": _("Decoder self-attention, layer 0, head {head}"),
              "cross": _("Cross-attention, layer 0, head {head}")}
    figure = figures.attention_heatmap(patterns_of(run.cache, kind)[0, head], queries, keys,
                                       titles[kind].format(head=head), run.blocked(kind))
    sides = {"encoder self": _("Source tokens look at source tokens. Output: {output}."),
             "decoder self": _("Each output position looks at itself and earlier ones (grey: masked). Output: "
                               "{output}."),
             "cross": _("Each output position looks at the encoder's source tokens. Output: {output}.")}
    return LessonFigure(figure, sides[kind].format(output=code(run.output))
                        + unknown_note(picked.task(), values["text"]))


def scaling(values):
    """Variance of q·k, softmax entropy or its largest gradient by d_k, for random Gaussian q and k, with and
    without the division by √d_k."""
    n_keys = int(values["keys"])
    stats = dot_product_stats(D_KS, n_keys=n_keys, seed=int(values["seed"]))
    last = stats.iloc[-1]
    return LessonFigure(lesson_figures.scaling_curves(stats)[values["statistic"]],
                        _("500 queries, each against {keys} keys. At d_k = {d_k}: variance of q·k {variance} (closed "
                          "form: {d_k}), of q·k/√d_k {scaled_variance}; entropy {entropy} nats without the "
                          "division, {scaled_entropy} with it (even weights: ln {keys} = {even}); largest gradient "
                          "{gradient} against {scaled_gradient}.").format(
                            keys=n_keys, d_k=D_KS[-1], variance=f"{last['variance']:.0f}",
                            scaled_variance=f"{last['scaled variance']:.2f}", entropy=f"{last['entropy']:.2f}",
                            scaled_entropy=f"{last['scaled entropy']:.2f}", even=f"{math.log(n_keys):.2f}",
                            gradient=f"{last['max gradient']:.3f}",
                            scaled_gradient=f"{last['scaled max gradient']:.3f}"))


# ---------------------------------------------------------------------------------------------
# Positional encoding


def positional_table(values):
    """The sinusoidal table PE for the chosen d_model and number of positions."""
    d_model, positions = int(values["d_model"]), int(values["positions"])
    if d_model % 2:
        raise ValueError(_("d_model = {d_model} is odd: the table pairs a sine with a cosine, so choose an even "
                           "one").format(d_model=d_model))
    table = sinusoidal_table(positions, d_model)  # (T, D)
    longest = 2 * math.pi * 10000 ** ((d_model - 2) / d_model)
    title = _("{positions} positions × {d_model} dimensions").format(positions=positions, d_model=d_model)
    return LessonFigure(figures.positional_heatmap(table, title),
                        _("Dimensions 0 and 1 repeat every 2π ≈ 6.3 positions; the last pair every {longest} "
                          "positions.").format(longest=f"{longest:,.0f}"))


# ---------------------------------------------------------------------------------------------
# Sequence-to-sequence and language models: the next token and its temperature


@torch.no_grad()
def next_token(values, model_name="prose-lm"):
    """The language model's next-token distribution after the prompt, at temperature 1 and at the chosen one."""
    picked = shipped(model_name)
    temperature = float(values["temperature"])
    tokens = picked.tokenizer.encode(values["text"])[-(picked.config.max_len - 1):]
    ids = torch.tensor([[BOS, *tokens]])  # (1, T)
    logits = picked.model.logits(None, ids)[0, -1]  # (V,)
    plain, tempered = distribution(logits), distribution(logits, temperature)  # (V,)
    shown = plain.topk(TOP_TOKENS).indices.tolist()
    labels = escaped(picked.tokenizer.labels(shown))
    named = _("temperature {temperature}")
    series = {named.format(temperature=1): plain[shown], named.format(temperature=f"{temperature:g}"): tempered[shown]}
    return LessonFigure(figures.probability_bars(labels, series, chosen=0, title=_("The next token")),
                        _("The {count} likeliest next tokens of {model}: the top one has {plain} at temperature 1 and "
                          "{tempered} at {temperature}. Greedy decoding takes it; sampling draws from the "
                          "bars.").format(
                            count=TOP_TOKENS, model=model_name, plain=f"{plain[shown[0]]:.0%}",
                            tempered=f"{tempered[shown[0]]:.0%}", temperature=f"{temperature:g}"))


# ---------------------------------------------------------------------------------------------
# Self-attention vs RNN vs CNN: the longest path between two positions


def longest_path(architecture, n, kernel):
    """Layers (or steps) a signal crosses between the two ends of a sequence of n tokens: a recurrent layer passes
    it on one step at a time, a stack of convolutions of width `kernel` widens its view by kernel - 1 per layer,
    self-attention joins every pair in one layer (Vaswani et al. 2017, table 1)."""
    if architecture == "RNN":
        return n - 1
    if architecture == "CNN":
        return math.ceil((n - 1) / (kernel - 1))
    return 1 if n > 1 else 0


def path_lengths(values):
    n, kernel = int(values["length"]), int(values["kernel"])
    lengths = np.unique(np.geomspace(2, n, 40).round().astype(int))
    names = {"RNN": "RNN", "CNN": _("CNN, kernel {kernel}").format(kernel=kernel), "attention": _("Self-attention")}
    series = {label: [longest_path(name, int(m), kernel) for m in lengths] for name, label in names.items()}
    figure = figures.curves(lengths, series, _("Longest path between two tokens"), _("sequence length n"),
                            _("layers or steps"), log_y=True)
    return LessonFigure(figure, _("At n = {n}: an RNN needs {rnn} sequential steps, a stack of convolutions {cnn} "
                                  "layers, self-attention {attention} (but it scores all {pairs} pairs).").format(
                                    n=n, rnn=longest_path("RNN", n, kernel), cnn=longest_path("CNN", n, kernel),
                                    attention=longest_path("attention", n, kernel), pairs=f"{n * n:,}"))


# ---------------------------------------------------------------------------------------------
# Variable-length sequences: a padded batch


def padding(values, model_name="reverse-transformer"):
    """The learner's lines as one padded batch of the reverse Transformer, its mask, and what padding changes."""
    picked = shipped(model_name)
    texts = [line.strip() for line in values["lines"].splitlines() if line.strip()]
    check = padding_check(picked.model, texts, picked.task())
    rows, line = check.table.to_dict("records"), _("input {input} ({padding} PAD) {masked} with the mask, {unmasked} "
                                                  "without")
    inputs = "; ".join(line.format(input=b, padding=row["padding"], masked=f"{row['max |difference|']:.0e}",
                                   unmasked=f"{row['without the mask']:.2g}") for b, row in enumerate(rows))
    return LessonFigure(lesson_figures.padded_batch(check),
                        _("Largest change of a logit at a real position, batch against alone: {inputs}.").format(
                            inputs=inputs))


# ---------------------------------------------------------------------------------------------
# Pretrained models downstream: MiniLM's sentence similarity


def sentence_similarity(values):
    model = minilm()
    sentences, notes = model.fit_sentences(values["sentences"])
    if len(sentences) < 2:
        raise ValueError(_("write at least two sentences, one per line, to compare them"))
    similarity = model.similarity(sentences)  # (N, N)
    numbers = [str(i + 1) for i in range(len(sentences))]
    pairs = [(float(similarity[i, j]), i, j) for i in range(len(sentences)) for j in range(i + 1, len(sentences))]
    best, i, j = max(pairs)
    return LessonFigure(figures.similarity_heatmap(similarity, numbers, _("Cosine similarity of the sentences")),
                        _("Sentences numbered from 1 in the order written; the closest pair is {first} and {second} "
                          "({similarity}).").format(first=i + 1, second=j + 1, similarity=f"{best:.2f}")
                        + (_(" Some lines were cut or left out.") if notes else ""))


# ---------------------------------------------------------------------------------------------
# Induction heads: the shipped lab model on a random string said twice


def induction_probe(tokenizer, half, seed):
    """(1, 1 + 2 * half) ids: BOS, `half` random letters (no specials), the same letters again."""
    generator = torch.Generator().manual_seed(seed)
    first = torch.randint(len(SPECIAL_LABELS), tokenizer.vocab_size, (1, half), generator=generator)  # (1, half)
    return torch.cat([torch.full((1, 1), BOS), first, first], dim=1)


def induction_tokens(values, model_name="induction-lm"):
    """(checkpoint, probe ids) of the lesson's inputs."""
    picked = shipped(model_name)
    return picked, induction_probe(picked.tokenizer, int(values["half"]), int(values["seed"]))


def induction_text(values, model_name="induction-lm"):
    """The probe as text (without BOS), for the explorer's input box."""
    picked, tokens = induction_tokens(values, model_name)
    return picked.tokenizer.decode(tokens[0, 1:].tolist())


def induction_head(values, model_name="induction-lm"):
    picked, tokens = induction_tokens(values, model_name)
    layer, head, half = int(values["layer"]), int(values["head"]), int(values["half"])
    patterns = self_attention_patterns(picked.model, tokens)  # {layer: (1, H, T, T)}
    scores = induction_score(patterns[layer], half)  # (H,)
    labels = escaped(picked.tokenizer.labels(tokens[0]))
    T = tokens.shape[1]
    chance = float(induction_score(torch.ones(T, T).tril().div(torch.arange(1, T + 1)[:, None])[None, None], half))
    figure = figures.attention_heatmap(patterns[layer][0, head], labels, labels,
                                       _("Layer {layer}, head {head}").format(layer=layer, head=head),
                                       torch.ones(T, T, dtype=torch.bool).triu(1))
    each = _("head {head} {score}")
    return LessonFigure(figure, _("{half} random letters, then the same {half} again. Induction score (weight from a "
                                  "letter's second copy on the letter after its first copy) of layer {layer}'s heads: "
                                  "{scores}; a head spreading its weight evenly scores {chance}.").format(
                                    half=half, layer=layer, chance=f"{chance:.2f}",
                                    scores=", ".join(each.format(head=h, score=f"{s:.2f}")
                                                     for h, s in enumerate(scores.tolist()))))
