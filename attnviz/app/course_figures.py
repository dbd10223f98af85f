"""The live figures of the course's lessons, from library functions on shipped models (the RNN's limits, the LSTM's
gates, the √d_k and padding lessons draw the figures of `lesson_figures`).

Every figure function takes the lesson's input values ({input key: value}) and returns a `LessonFigure`: one plotly
figure and a sentence of what it shows, with the numbers. They compute on the shipped checkpoints, loaded once per
process and only read; a ValueError says what is wrong with the learner's input.
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
CONTENDERS = {"Transformer": "reverse-long-transformer", "LSTM + Bahdanau attention": "reverse-long-lstm-bahdanau",
              "Plain LSTM": "reverse-long-lstm", "Plain RNN (tanh)": "reverse-long-rnn"}  # the same 4 to 24 letters


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
        raise ImportError(f"the pretrained MiniLM is not installed: {pretrained.INSTALL_HINT}")
    return pretrained.load_minilm()


def unknown_note(task, text):
    unknown = task.unknown_characters(text)
    return f" The model does not know {', '.join(map(code, unknown))}: it reads them as `<unk>`." if unknown else ""


# ---------------------------------------------------------------------------------------------
# Sequences and hidden states


@torch.no_grad()
def hidden_states(values, model_name="reverse-lstm"):
    """The LSTM encoder's hidden state h_t after each token of the input: (steps, units)."""
    picked = shipped(model_name)
    task = picked.task()
    src = task.encode_source(values["text"], MAX_TOKENS + 1)  # (1, S): letters + EOS
    states, _ = picked.model.encoder(src, src == PAD)  # (1, S, H)
    labels = escaped(task.tokenizer.labels(src[0]))
    figure = figures.matrix_heatmap(states[0], labels, None, "Hidden state h_t after each step", x_title="unit",
                                    y_title="step (token read)", value_name="h_t", diverging=True,
                                    show_values=False)
    return LessonFigure(figure, f"{model_name}'s encoder, {states.shape[2]} units, {len(labels)} steps: row t is "
                                f"what it carries after reading token t." + unknown_note(task, values["text"]))


# ---------------------------------------------------------------------------------------------
# The RNN's limits and the LSTM's gates


def gradient_reach(values):
    """The gradient of the last output w.r.t. each input, by distance, for a Transformer, two LSTMs and a plain RNN
    reversing the same letters (the last output is the first letter, the farthest input)."""
    text = values["text"]
    frames = {label: text_gradient_by_distance(shipped(name).model, shipped(name).tokenizer, text, text[::-1])
              for label, name in CONTENDERS.items()}
    ratios = {label: frame["gradient"].iloc[0] / frame["gradient"].iloc[-2] for label, frame in frames.items()}
    return LessonFigure(lesson_figures.gradient_reach(frames),
                        f"The last output copies the first of the {len(text)} letters, "
                        f"{frames['Plain LSTM']['distance'].max()} steps away. Gradient on the first letter ÷ "
                        "gradient on the last letter: "
                        + ", ".join(f"{label} {ratio:.2g}" for label, ratio in ratios.items()) + ".")


def lstm_gates(values, model_name="reverse-lstm"):
    """One gate (or the cell state) of the plain LSTM's encoder at each step of the input: units x steps."""
    picked = shipped(model_name)
    gates, tokens = text_lstm_gates(picked.model, picked.tokenizer, values["text"])
    gate = values["gate"]
    forget, cell = gates["forget"].mean(1), np.abs(gates["cell"]).max(1)  # (T,) each
    return LessonFigure(lesson_figures.lstm_gate_maps({gate: gates[gate]}, tokens)[gate],
                        f"{model_name}'s encoder, {gates[gate].shape[1]} units. Mean forget gate {forget[0]:.2f} at "
                        f"the first step, {forget[-1]:.2f} at the last; the largest |c_t| goes from {cell[0]:.1f} at "
                        f"the first step to {cell[-1]:.1f} at the last.")


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
    figure = figures.attention_heatmap(by_hand.steps["weights"], labels, labels, f"Encoder self-attention, head {head}",
                                       show_values=len(labels) <= MAX_TOKENS)
    return LessonFigure(figure, f"Each row is one token's query scored against every key, divided by √{d_k} = "
                                f"{math.sqrt(d_k):.0f} and passed through the softmax: its weights sum to 1. Computed "
                                f"here from W^Q and W^K; the weights the model's hook captured differ by at most "
                                f"{by_hand.weights_error:.0e}." + unknown_note(picked.task(), values["text"]))


def multi_head(values, model_name="dates-transformer"):
    """Every head of the cross-attention on the input: each head its own pattern over the same tokens."""
    picked, run = transformer_run(model_name, values["text"], max_tokens=24)
    patterns = patterns_of(run.cache, "cross")  # (L, H, Tq, Tk)
    L, H = patterns.shape[:2]
    figure = figures.attention_grid(patterns, f"{H} heads of cross-attention: row = output step, column = source")
    return LessonFigure(figure, f"{model_name} wrote {code(run.output)}. Each of its {H} heads has its own W^Q, W^K, "
                                f"W^V of {picked.config.d_model // H} columns; W^O mixes their {H} outputs back into "
                                f"{picked.config.d_model} numbers." + unknown_note(picked.task(), values["text"]))


def attention_kinds(values, model_name="reverse-transformer"):
    """One head of one attention kind: encoder self (all to all), decoder self (causal) or cross."""
    picked, run = transformer_run(model_name, values["text"])
    kind, head = values["attention"], int(values["head"])
    queries, keys = map(escaped, run.labels(kind))
    figure = figures.attention_heatmap(patterns_of(run.cache, kind)[0, head], queries, keys,
                                       f"{kind.capitalize()} attention, layer 0, head {head}", run.blocked(kind),
                                       x_title="key", y_title="query")
    sides = {"encoder self": "source tokens look at source tokens",
             "decoder self": "each output position looks at itself and earlier ones (grey: masked)",
             "cross": "each output position looks at the encoder's source tokens"}
    return LessonFigure(figure, f"{sides[kind].capitalize()}. Output: {code(run.output)}."
                        + unknown_note(picked.task(), values["text"]))


def scaling(values):
    """Variance of q·k, softmax entropy or its largest gradient by d_k, for random Gaussian q and k, with and
    without the division by √d_k."""
    n_keys = int(values["keys"])
    stats = dot_product_stats(D_KS, n_keys=n_keys, seed=int(values["seed"]))
    last = stats.iloc[-1]
    return LessonFigure(lesson_figures.scaling_curves(stats)[values["statistic"]],
                        f"500 queries, each against {n_keys} keys. At d_k = {D_KS[-1]}: variance of q·k "
                        f"{last['variance']:.0f} (closed form: {D_KS[-1]}), of q·k/√d_k "
                        f"{last['scaled variance']:.2f}; "
                        f"entropy {last['entropy']:.2f} nats without the division, {last['scaled entropy']:.2f} with "
                        f"it (even weights: ln {n_keys} = {math.log(n_keys):.2f}); largest gradient "
                        f"{last['max gradient']:.3f} against {last['scaled max gradient']:.3f}.")


# ---------------------------------------------------------------------------------------------
# Positional encoding


def positional_table(values):
    """The sinusoidal table PE for the chosen d_model and number of positions."""
    d_model, positions = int(values["d_model"]), int(values["positions"])
    if d_model % 2:
        raise ValueError(f"d_model = {d_model} is odd: the table pairs a sine with a cosine, so choose an even one")
    table = sinusoidal_table(positions, d_model)  # (T, D)
    longest = 2 * math.pi * 10000 ** ((d_model - 2) / d_model)
    return LessonFigure(figures.positional_heatmap(table, f"{positions} positions × {d_model} dimensions"),
                        f"Dimensions 0 and 1 repeat every 2π ≈ 6.3 positions; the last pair every "
                        f"{longest:,.0f} positions.")


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
    series = {"temperature 1": plain[shown], f"temperature {temperature:g}": tempered[shown]}
    return LessonFigure(figures.probability_bars(labels, series, chosen=0, title="The next token"),
                        f"The {TOP_TOKENS} likeliest next tokens of {model_name}: the top one has "
                        f"{plain[shown[0]]:.0%} at temperature 1 and {tempered[shown[0]]:.0%} at {temperature:g}. "
                        "Greedy decoding takes it; sampling draws from the bars.")


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
    names = {"RNN": "RNN", "CNN": f"CNN, kernel {kernel}", "attention": "Self-attention"}
    series = {label: [longest_path(name, int(m), kernel) for m in lengths] for name, label in names.items()}
    figure = figures.curves(lengths, series, "Longest path between two tokens", "sequence length n",
                            "layers or steps", log_y=True)
    return LessonFigure(figure, f"At n = {n}: an RNN needs {longest_path('RNN', n, kernel)} sequential steps, a stack "
                                f"of convolutions {longest_path('CNN', n, kernel)} layers, self-attention "
                                f"{longest_path('attention', n, kernel)} (but it scores all {n * n:,} pairs).")


# ---------------------------------------------------------------------------------------------
# Variable-length sequences: a padded batch


def padding(values, model_name="reverse-transformer"):
    """The learner's lines as one padded batch of the reverse Transformer, its mask, and what padding changes."""
    picked = shipped(model_name)
    texts = [line.strip() for line in values["lines"].splitlines() if line.strip()]
    check = padding_check(picked.model, texts, picked.task())
    rows = check.table.to_dict("records")
    return LessonFigure(lesson_figures.padded_batch(check),
                        "Largest change of a logit at a real position, batch against alone: "
                        + "; ".join(f"input {b} ({row['padding']} PAD) {row['max |difference|']:.0e} with the mask, "
                                    f"{row['without the mask']:.2g} without" for b, row in enumerate(rows)) + ".")


# ---------------------------------------------------------------------------------------------
# Pretrained models downstream: MiniLM's sentence similarity


def sentence_similarity(values):
    model = minilm()
    sentences, notes = model.fit_sentences(values["sentences"])
    if len(sentences) < 2:
        raise ValueError("write at least two sentences, one per line, to compare them")
    similarity = model.similarity(sentences)  # (N, N)
    numbers = [str(i + 1) for i in range(len(sentences))]
    pairs = [(float(similarity[i, j]), i, j) for i in range(len(sentences)) for j in range(i + 1, len(sentences))]
    best, i, j = max(pairs)
    return LessonFigure(figures.similarity_heatmap(similarity, numbers, "Cosine similarity of the sentences"),
                        f"Sentences numbered from 1 in the order written; the closest pair is {i + 1} and {j + 1} "
                        f"({best:.2f})." + (" Some lines were cut or left out." if notes else ""))


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
    figure = figures.attention_heatmap(patterns[layer][0, head], labels, labels, f"Layer {layer}, head {head}",
                                       torch.ones(T, T, dtype=torch.bool).triu(1))
    return LessonFigure(figure, f"{half} random letters, then the same {half} again. Induction score (weight from a "
                                f"letter's second copy on the letter after its first copy) of layer {layer}'s heads: "
                                + ", ".join(f"head {h} {s:.2f}" for h, s in enumerate(scores.tolist()))
                                + f"; a head spreading its weight evenly scores {chance:.2f}.")
