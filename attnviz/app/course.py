"""The course: the seed's story from sequences and the RNN's limits to the Transformer, as lessons the Course page
draws one at a time (`ui.show_lesson`). A lesson is data: a short text, a formula, the inputs the learner may change,
one live figure computed from them, a "try this" with its answer, and links that open the full pages at exactly the
state the lesson talks about.

    lesson = LESSONS[3].translated()                                                 # in the session's language
    drawn = lesson.figure({field.key: field.default for field in lesson.inputs})   # a LessonFigure
    lesson.links(values)                                                              # [Link(page, label, params)]

The lessons' words are English msgids marked with `N_`; `translated()` gives a lesson in the session's language.
"""
from dataclasses import dataclass, field, replace
from typing import Callable

from attnviz.app import course_figures as live
from attnviz.i18n import N_, _


@dataclass(frozen=True)
class Input:
    """One value the learner sets: a text (`lines` for a text area), a number between `low` and `high`, or one of
    `options` (a {value: label} dict, where a label may show its value as {value})."""
    key: str
    label: str
    default: object
    low: float | None = None
    high: float | None = None
    step: float | None = None
    options: dict | None = None
    lines: bool = False
    help: str = ""

    def translated(self):
        """This input with its label, help and option labels in the session's language."""
        return replace(self, label=_(self.label), help=_(self.help) if self.help else "",
                       options=self.options and {value: _(label).format(value=value)
                                                 for value, label in self.options.items()})


@dataclass(frozen=True)
class Link:
    """A page of the app (`page`, its file as in ui.PAGES) opened with `params` as its URL's query parameters."""
    page: str
    label: str
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Lesson:
    slug: str  # its name in the URL: ?lesson=slug
    title: str
    text: str  # Markdown with $...$ formulas, at most ~150 words
    figure: Callable  # {input key: value} -> LessonFigure
    try_this: str
    answer: str
    links: Callable  # {input key: value} -> [Link]: the first is "open the full page"
    formula: str = ""  # LaTeX, shown under the text
    inputs: tuple = ()

    def defaults(self):
        return {i.key: i.default for i in self.inputs}

    def translated(self):
        """This lesson in the session's language: its title, text, "try this", answer, inputs and link labels. The
        formula is the same in every language, and the figure translates its own words."""
        return replace(self, title=_(self.title), text=_(self.text), try_this=_(self.try_this), answer=_(self.answer),
                       inputs=tuple(lesson_input.translated() for lesson_input in self.inputs),
                       links=lambda values: [replace(link, label=_(link.label)) for link in self.links(values)])


def explorer_at(page, model, kind, layer=0, head=0, text="attention", label=N_("Open the full page")):
    """A link to an attention page (explorer or mechanics) at one model, input, kind, layer and head (the
    lesson's own text and head when it has those inputs)."""
    return lambda values: [Link(page, label, {"model": model, "text": values.get("text", text), "attention": kind,
                                              "layer": str(layer), "head": str(values.get("head", head))})]


def comparison_at(task, label=N_("Open RNN vs attention")):
    return lambda values: [Link("pages/rnn_vs_attention.py", label, {"rnn_task": task, "rnn_source": "shipped"})]


KINDS = {"encoder self": N_("encoder self-attention"), "decoder self": N_("decoder self-attention (causal)"),
         "cross": N_("cross-attention")}
HEAD = Input("head", N_("Head"), 0, options={h: N_("head {value}") for h in range(4)})
LETTERS = Input("text", N_("Letters (a to z, 8 to 12 of them)"), "attention",
                help=N_("The shipped reverse models were trained on 8 to 12 letters."))


LESSONS = [
    Lesson(
        "sequences", N_("Sequences, time steps and hidden states"),
        N_("A **sequence** is data whose order carries meaning: the letters of a word, the words of a sentence, a "
           "reading every second. Each element arrives at a **time step** $t$. A recurrent network reads the "
           "sequence one step at a time and carries a **hidden state** $h_t$, a vector that must summarise "
           "everything read so far, because it is all the network keeps. The same weights are used at every step, so "
           "the network can read a sequence of any length. Below: the 64 units of the shipped LSTM encoder (of the "
           "model that reverses letters) after each letter of your input."),
        live.hidden_states,
        N_("Type `abcdefgh`, then `abcdefghz`. Which rows change?"),
        N_("The first eight rows keep exactly the same numbers; only the rows of `z` (new) and `<eos>` change. The "
           "state after step $t$ depends on the tokens up to $t$ alone: the encoder reads left to right and never "
           "looks ahead."),
        comparison_at("reverse"), r"h_t = f(x_t, h_{t-1})", (Input("text", N_("Letters (a to z)"), "abcdefgh"),)),
    Lesson(
        "rnn-limits", N_("The RNN and its limits"),
        N_("Training follows the gradient of the loss back to every input. In a recurrent network the output at the "
           "last step reaches the input of step $j$ only through every state in between, so its gradient is a "
           "product of one Jacobian $\\partial h_{t}/\\partial h_{t-1}$ per step: it tends to shrink (or explode) "
           "with the distance, and what lies far back is learnt slowly or not at all. And whatever the decoder needs "
           "must fit into the one fixed-size state. Below: four shipped models reversing the same letters, so the "
           "last output copies the first, farthest letter; the gradient of that output with respect to each input, "
           "measured with autograd."),
        live.gradient_reach,
        N_("Type 24 letters. For each model, how does the gradient on the first letter (the one the last output "
           "copies) compare with the gradient on the last letter?"),
        N_("The Transformer and the LSTM with attention put about 4 to 100 times more gradient on the first letter "
           "than on the last: attention reaches it in one step. The plain LSTM gives the first letter no more, often "
           "less (a ratio below 1), and the plain tanh RNN's gradient on the first letter is tens of times smaller "
           "than on the last: through 48 steps of recurrence it fades away."),
        comparison_at("reverse-long"),
        r"\frac{\partial y_T}{\partial x_j} = \frac{\partial y_T}{\partial h_T} \prod_{t=j+1}^{T} "
        r"\frac{\partial h_t}{\partial h_{t-1}} \, \frac{\partial h_j}{\partial x_j}",
        (Input("text", N_("Letters (a to z, 4 to 24 of them)"), "thequickbrownfoxjumps"),)),
    Lesson(
        "lstm-gates", N_("The LSTM and its gates"),
        N_("The LSTM (Hochreiter and Schmidhuber 1997) adds a **cell state** $c_t$ beside the hidden state and three "
           "**gates**, each a sigmoid between 0 and 1 for every unit: the **forget** gate $f_t$ decides how much of "
           "the old cell is kept, the **input** gate $i_t$ how much of the new candidate $g_t$ is written, the "
           "**output** gate $o_t$ how much of the cell is shown as $h_t$. The cell is updated by addition, not by a "
           "squashing matrix product, so with $f_t$ near 1 a memory and its gradient pass many steps unchanged. "
           "Below: the gates of the shipped LSTM encoder at each step of your input, computed from its weights."),
        live.lstm_gates,
        N_("Choose the cell state and type a long word. What happens to the largest values as the word goes on?"),
        N_("They grow step by step (for `attention` from about 0.8 to 7.8): the forget gate stays mostly open (near "
           "1 by the end), so the cell adds up what it writes instead of overwriting it, a memory a plain RNN's "
           "$\\tanh$ state cannot keep."),
        comparison_at("reverse"),
        r"c_t = f_t \odot c_{t-1} + i_t \odot g_t, \qquad h_t = o_t \odot \tanh(c_t)",
        (Input("text", N_("Letters (a to z)"), "attention"),
         Input("gate", N_("Show"), "forget", options={"input": N_("input gate"), "forget": N_("forget gate"),
                                                      "output": N_("output gate"), "cell": N_("cell state")}))),
    Lesson(
        "query-key-value", N_("Query, key and value"),
        N_("Attention replaces the hidden state's bottleneck by a lookup. Every token's vector $x$ is projected "
           "three ways: a **query** $q$ (what it is looking for), a **key** $k$ (what it offers to be found by) and "
           "a **value** $v$ (what it hands over when found). A query's dot product with each key scores how well "
           "they match; a softmax turns a row of scores into weights that sum to 1, and the token's output is the "
           "weighted sum of the values. Every token can reach every other in one step, however far apart. Below: one "
           "head of the shipped reverse Transformer's encoder on your letters."),
        live.query_key_value,
        N_("Type a word with a repeated letter, like `attention`. Do the rows of the two `t`s look alike?"),
        N_("Not quite. A query is made from the token's vector, which is its letter's embedding *plus* its "
           "position's encoding, so the same letter at two places asks slightly different questions (lesson 7 shows "
           "why)."),
        explorer_at("pages/mechanics.py", "reverse-transformer", "encoder self"),
        r"Q = XW^Q, \quad K = XW^K, \quad V = XW^V", (LETTERS, HEAD)),
    Lesson(
        "scaled-dot-product", N_("Scaled dot-product attention, and why √d_k"),
        N_("Scaled dot-product attention scores every query against every key at once, $QK^\\top$, divides by "
           "$\\sqrt{d_k}$, applies a softmax to each row and takes the weighted sum of the values. Why the division? "
           "If the $d_k$ entries of $q$ and $k$ are independent with mean 0 and variance 1, $q \\cdot k$ is a sum of "
           "$d_k$ such products and has variance $d_k$. Scores that far apart make the softmax put almost all weight "
           "on one key, and its gradient $p_i(\\delta_{ij} - p_j)$ all but vanishes: the head stops learning. "
           "Divided by $\\sqrt{d_k}$, the scores keep variance 1 for every $d_k$. Below: random $q$ and $k$ of "
           "growing $d_k$."),
        live.scaling,
        N_("Show the entropy. What is it at d_k = 512 without the division, and with it?"),
        N_("Without it about 0.12 nats: nearly all weight on one of the 16 keys. With it about 2.35 nats, close to "
           "the 2.77 of even weights, the same as at d_k = 1: the division keeps the softmax where it can still "
           "learn."),
        explorer_at("pages/mechanics.py", "reverse-transformer", "encoder self"),
        r"\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{d_k}}\right) V, \qquad "
        r"\mathrm{Var}(q \cdot k) = d_k",
        (Input("statistic", N_("Show"), "variance",
               options={"variance": N_("variance of q·k"), "entropy": N_("softmax entropy"),
                        "gradient": N_("largest softmax gradient")}),
         Input("keys", N_("Keys per query"), 16, 2, 64, 1), Input("seed", N_("Random seed"), 0, 0, 9999, 1))),
    Lesson(
        "multi-head", N_("Multi-head attention"),
        N_("One head gives each query one set of weights, so it can only look for one kind of thing at a time. "
           "**Multi-head attention** runs $h$ heads side by side, each with its own small $W^Q_i, W^K_i, W^V_i$ "
           "(here 4 heads of 16 columns in a model of width 64), concatenates their outputs and mixes them with "
           "$W^O$. Heads are free to specialise: one may track the day, another the month. Below: the four "
           "cross-attention heads of the shipped date model, which rewrites dates as ISO (year-month-day)."),
        live.multi_head,
        N_("Type `23 Nov 2026`. Where do the heads look in the rows that write `11`, the month?"),
        N_("At `N`, `o` and `v`: the month's number has to come from its name, and the heads that matter there weigh "
           "the three letters of `Nov`. While writing the year they weigh `2026` instead."),
        explorer_at("pages/explorer.py", "dates-transformer", "cross"),
        r"\mathrm{MultiHead}(Q, K, V) = \mathrm{Concat}(\mathrm{head}_1, \ldots, \mathrm{head}_h)\,W^O, \quad "
        r"\mathrm{head}_i = \mathrm{Attention}(QW_i^Q, KW_i^K, VW_i^V)",
        (Input("text", N_("A date, in any common format"), "23 Nov 2026"),)),
    Lesson(
        "positional-encoding", N_("Positional encoding"),
        N_("Attention by itself is blind to order: shuffle the tokens and each one gets the same weighted sum, "
           "shuffled. So the Transformer adds to each token's embedding a vector that depends only on its position. "
           "The original one is fixed: pairs of dimensions hold a sine and a cosine, whose wavelength grows "
           "geometrically from $2\\pi$ to $10000 \\cdot 2\\pi$. Low dimensions tell neighbours apart, high ones tell "
           "the beginning from the end, and moving $k$ positions on is the same rotation of each pair wherever you "
           "start, which a head can learn once."),
        live.positional_table,
        N_("Set d_model to 16. Which dimensions repeat fastest, and after how many positions does dimension 14 "
           "repeat?"),
        N_("Dimensions 0 and 1 repeat every $2\\pi \\approx 6.3$ positions. Dimension 14 has wavelength $2\\pi "
           "\\cdot 10000^{14/16} \\approx 19{,}900$ positions: within a sequence it barely moves."),
        lambda values: [Link("pages/positional.py", N_("Open the full page"), {"model": "reverse-transformer"})],
        r"PE_{(pos,\,2i)} = \sin\!\left(pos / 10000^{2i/d_{model}}\right), \qquad "
        r"PE_{(pos,\,2i+1)} = \cos\!\left(pos / 10000^{2i/d_{model}}\right)",
        (Input("d_model", "d_model", 64, 2, 256, 2), Input("positions", N_("Positions"), 64, 4, 256, 1))),
    Lesson(
        "encoder-decoder", N_("Encoder and decoder: self, causal and cross-attention"),
        N_("The Transformer of the original paper has two stacks. The **encoder** reads the whole source with "
           "**self-attention**: every source token looks at every other. The **decoder** writes the output one token "
           "at a time. Its self-attention is **causal**: position $t$ may look only at positions up to $t$, because "
           "later ones are not written yet when it is predicted. Its **cross-attention** takes queries from the "
           "decoder and keys and values from the encoder's output: that is where the output looks the source up. "
           "Below: the shipped Transformer that reverses letters; pick the kind of attention."),
        live.attention_kinds,
        N_("Choose cross-attention for `attention`. Which source letter does the first output row look at?"),
        N_("The last letter, `n`, then mostly one step to the left per row: reversing makes the cross-attention an "
           "anti-diagonal. In the causal self-attention the upper triangle is grey (masked)."),
        lambda values: explorer_at("pages/explorer.py", "reverse-transformer", values["attention"])(values),
        r"\text{causal mask: } M_{ij} = -\infty \text{ for } j > i, \quad "
        r"\mathrm{softmax}\!\left(QK^\top/\sqrt{d_k} + M\right)V",
        (LETTERS, Input("attention", N_("Attention"), "cross", options=KINDS), HEAD)),
    Lesson(
        "seq2seq-and-language-models", N_("Sequence to sequence, language models, training and decoding"),
        N_("A **sequence-to-sequence** model (encoder and decoder) maps a source to a target: dates to ISO, English "
           "to French. A **language model** is a decoder alone: it predicts the next token of a text. Both are "
           "**trained** with teacher forcing: the decoder reads the true output shifted by one and is scored by the "
           "cross-entropy of each next token, all positions at once thanks to the causal mask. At **inference** "
           "there is no true output: the model writes a token, reads it back, writes the next. Greedy decoding takes "
           "the likeliest token; sampling draws one, after dividing the scores by a **temperature**."),
        live.next_token,
        N_("Set the temperature to 0.3, then to 1.5. What happens to the tallest bar?"),
        N_("At 0.3 it grows (the distribution sharpens towards greedy); at 1.5 it shrinks and the others grow "
           "(flatter, more surprising samples). The order of the bars never changes."),
        lambda values: [Link("pages/decoding.py", N_("Open the full page"),
                             {"model": "prose-lm", "text": values["text"], "method": "sample"})],
        r"p_T(w) = \frac{\exp(z_w / T)}{\sum_{w'} \exp(z_{w'} / T)}",
        (Input("text", N_("Prompt"), "The function returns"),
         Input("temperature", N_("Temperature"), 0.7, 0.05, 2.0, 0.05))),
    Lesson(
        "self-attention-vs-rnn-vs-cnn", N_("Self-attention vs RNN vs CNN"),
        N_("Three ways to let position $i$ learn from position $j$. A **recurrent** layer passes information one "
           "step at a time: $n$ sequential steps, and a path of $n - 1$ steps between the ends, along which "
           "gradients fade. A **convolution** of width $k$ sees $k$ neighbours and runs in parallel, but needs a "
           "stack of $\\lceil (n-1)/(k-1) \\rceil$ layers before the ends meet. **Self-attention** joins every pair "
           "in one layer, in parallel, at the price of scoring all $n^2$ pairs: cheap for sentences, costly for long "
           "documents (Vaswani et al. 2017, table 1)."),
        live.path_lengths,
        N_("Set the length to 1024 and the kernel to 3. How many layers does the CNN need, and the RNN's steps?"),
        N_("The CNN needs 512 layers, the RNN 1023 sequential steps, self-attention 1 layer that scores 1,048,576 "
           "pairs. The full page measures the time and memory this costs on this machine."),
        comparison_at("reverse-long"), "",
        (Input("length", N_("Sequence length n"), 64, 2, 4096, 1),
         Input("kernel", N_("CNN kernel width k"), 3, 2, 15, 1))),
    Lesson(
        "padding", N_("Variable-length sequences and padding"),
        N_("Sentences differ in length, but a batch is a rectangle: shorter sequences are filled up with a **PAD** "
           "token. The model must not read it. A **key-padding mask** (True at PAD) gives each padded key $-\\infty$ "
           "before the softmax, so its weight is exactly 0 and nothing of it reaches a real position; in the decoder "
           "the causal mask already keeps real positions from the later PAD ones. Below: your lines as one padded "
           "batch of the shipped reverse Transformer, and the proof on real numbers: each line run alone and in the "
           "batch, with and without the mask (in float64, so rounding is about $10^{-14}$)."),
        live.padding,
        N_("Add a line of two letters. How large is its change with the mask, and without it?"),
        N_("With the mask about $10^{-14}$, rounding: padding changes nothing. Without the mask, PAD is read as a "
           "token and the logits move by whole units, enough to change the output. The longest line needs no "
           "padding, so it is the same either way."),
        lambda values: explorer_at("pages/mechanics.py", "reverse-transformer", "encoder self")(
            {"text": values["lines"].splitlines()[0].strip() if values["lines"].strip() else ""}),
        r"\mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{d_k}} + M\right), \quad M_{ij} = -\infty "
        r"\text{ where key } j \text{ is PAD}",
        (Input("lines", N_("Inputs, one per line (a to z)"), "attention\nabcdefgh\ntransformers", lines=True),)),
    Lesson(
        "pretrained-downstream", N_("Pretrained models downstream"),
        N_("Training a large model from scratch takes data and compute few have; instead, a model **pretrained** on "
           "a large corpus is reused **downstream**. all-MiniLM-L6-v2 is a 6-layer BERT trained so that sentences "
           "with the same meaning get nearby vectors: the mean of its last layer's token vectors, normalised, is the "
           "sentence's embedding. Their dot product, the cosine similarity, powers semantic search, clustering and "
           "duplicate detection without any training here. Its weights run in attnviz's own encoder, so its heads "
           "can be inspected like the small models'."),
        live.sentence_similarity,
        N_("Add a line that says `The cat sat on the mat.` in other words, and one about the weather. Which scores "
           "higher against the first line?"),
        N_("The paraphrase, clearly: MiniLM scores meaning, not shared words, so a rewording with few words in "
           "common still lands close, and a sentence on another topic scores near 0."),
        lambda values: [Link("pages/pretrained.py", N_("Open the full page"))], "",
        (Input("sentences", N_("Sentences, one per line"),
               "The cat sat on the mat.\nA kitten was sleeping on the rug.\nThe stock market fell sharply today.",
               lines=True),)),
    Lesson(
        "induction-heads", N_("Induction heads (the lab)"),
        N_("Olsson et al. (2022) found in language models a two-head circuit that copies: a head in an early layer "
           "looks one token back, and a head in a later layer, reading what that first head wrote, looks from a "
           "token's second occurrence at the token that **followed its first occurrence**, and predicts it again. "
           "These **induction heads** appear suddenly during training, with a drop in the loss. The shipped lab "
           "model, two layers of attention and nothing else, learnt them on random strings said twice. On "
           "**Train live**, the preset *watch an induction head form* trains it again in about 90 seconds while you "
           "watch the scores jump."),
        live.induction_head,
        N_("Compare layer 0 with layer 1: where do their heads look in the second half?"),
        N_("Layer 1's heads look from each repeated letter at the letter just after its first copy (a stripe half "
           "the sequence to the left, one to the right); layer 0's heads look about one token back: together, the "
           "two-layer induction circuit."),
        lambda values: [
            Link("pages/explorer.py", N_("Open the full page"),
                 {"model": "induction-lm", "attention": "decoder self", "layer": str(values["layer"]),
                  "head": str(values["head"]), "text": live.induction_text(values)}),
            Link("pages/train.py", N_("Train it yourself on Train live"))],
        "", (Input("layer", N_("Layer"), 1, options={layer: N_("layer {value}") for layer in range(2)}), HEAD,
             Input("half", N_("Letters before the repeat"), 16, 4, 31, 1),
             Input("seed", N_("Random seed"), 0, 0, 9999, 1))),
]
