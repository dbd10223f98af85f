"""Step-by-step decoding: greedy, sampling and beam search one token at a time, with the distribution, the
attention and (beam search) the search tree behind every choice. Force a token and watch the rest change.

The run is fully determined by the input and a `Plan` (method, settings of each stretch of steps, forced tokens,
steps taken), so the session and the URL keep only those and the page decodes again (cached) on every run."""
import html

import streamlit as st

from attnviz.app import figures, markdown, ui
from attnviz.i18n import N_, _, ngettext
from attnviz.interpret.decoding_plan import Plan, describe_sampling, parse_number, stretch_notes
from attnviz.interpret.decoding_views import (TREE_STEPS, attention_rows, beam_tree, compare_methods, hypotheses_table,
                                              steps_table, top_choices)
from attnviz.interpret.patterns import parse_pattern_name

ui.sidebar(__file__)

STOPS = {"eos": N_("ended with <eos>"), "max_new_tokens": N_("reached the new-token limit"),
         "max_len": N_("reached the longest sequence this model can read")}
DECIMALS = "%.3f"  # every log-probability, probability, score and entropy in the tables
state = st.session_state


@st.cache_data(max_entries=64, show_spinner=False)
def decode(_picked, key, ids, plan):
    return plan.decode(_picked.model, _picked.tokenizer, list(ids))


@st.cache_data(max_entries=32, show_spinner=_("Decoding with every method…"))
def compare(_picked, key, ids, max_new_tokens, seeds, view, width, length_penalty):
    return compare_methods(_picked.model, _picked.tokenizer, list(ids), max_new_tokens, seeds,
                           width=width, length_penalty=length_penalty, **dict(view))


def numbers(table):
    """The column settings that show every float column of `table` with the same decimals."""
    return {name: st.column_config.NumberColumn(format=DECIMALS) for name in table.columns
            if table[name].dtype.kind == "f"}


def go_to(taken, settings):
    state.dec_plan = state.dec_plan.go_to(taken, settings)
    state.dec_step = taken  # the slider jumps to the newest step (clamped below)


def start_again(method, settings):
    state.dec_plan, state.dec_step = Plan.start(method, settings), 1


def replay(settings):
    state.dec_plan = state.dec_plan.replay(settings)


def force(t):
    state.dec_plan = state.dec_plan.force(t, state.dec_force_token)
    state.dec_step = t + 1


st.title(_("Step-by-step decoding"))
st.markdown(_("A model writes its output one token at a time: at each step it gives every token of its vocabulary "
              "a probability, and a **method** picks one. **Greedy** takes the most likely, **sampling** draws one "
              "(temperature, top-k and top-p reshape the distribution first), **beam search** keeps the few most "
              "likely partial outputs. Step through, change the settings, or force a token of your own."))
picked = ui.model_or_stop()
task = ui.task_or_stop(picked)
model, tokenizer = picked.model, picked.tokenizer
text = ui.input_text(task, _("Source") if model.has_encoder else _("Prompt (may be empty)"))
ui.input_notes_or_stop(task, text)
try:  # a language model's prompt leaves room for at least one new token
    ids = task.encode_source(text, model.config.max_len - (0 if model.has_encoder else 1))  # (1, S)
except ValueError as error:
    st.error(markdown.escape(_("Cannot decode this input: {error}.").format(error=error)))
    st.stop()
room = model.config.max_len - (1 if model.has_encoder else ids.shape[1])
method, max_new, view, settings = ui.decoding_controls(tokenizer.vocab_size, room)
options = [i for i in range(tokenizer.vocab_size) if i not in (tokenizer.pad_id, tokenizer.bos_id)]  # forceable

if state.get("dec_for") != (picked.name, text):  # a session's first run takes the link's decoding; new input: step 1
    if "dec_for" in state:
        start_again(method, settings)
    else:
        state.dec_plan, notes = Plan.from_params(st.query_params, method, settings, max_new, options,
                                                 tokenizer.vocab_size)
        try:
            state.dec_step = parse_number(st.query_params.get("step", state.dec_plan.taken), "step", 1,
                                          state.dec_plan.taken)
        except ValueError as error:
            notes.append(_("The link's {error}: showing the newest step.").format(error=error))
        for note in notes:
            st.warning(markdown.escape(note))
    state.dec_for = (picked.name, text)
plan = state.dec_plan = state.dec_plan.follow(method, settings).clamped(max_new)
for name, value in plan.params().items():
    if value is not None:
        st.query_params[name] = value
    elif name in st.query_params:
        del st.query_params[name]
source = tuple(ids[0].tolist())
decoded = decode(picked, ui.model_key(picked), source, plan)
output = decoded.ids()
n_steps = len(decoded.steps)
done = n_steps < plan.taken or plan.taken >= max_new or (method != "beam" and decoded.stop[0] == "eos")

next_box, end_box, reset_box, status = st.columns([1, 1, 1, 4], vertical_alignment="center")
next_box.button(_("Next step"), key="dec_next", on_click=go_to, args=(plan.taken + 1, settings), disabled=done,
                icon=":material/skip_next:", width="stretch")
end_box.button(_("Run to end"), key="dec_run", on_click=go_to, args=(max_new, settings), disabled=done,
               icon=":material/fast_forward:", width="stretch")
reset_box.button(_("Reset"), key="dec_reset", on_click=start_again, args=(method, settings),
                 icon=":material/restart_alt:", width="stretch")
taken = ngettext("{count} step taken", "{count} steps taken", n_steps).format(count=n_steps)
status.caption(_("; ").join([markdown.escape(taken)] + ([markdown.escape(_(STOPS[decoded.stop[0]]))] if done else [])
                            + [_("step {step} forced to {token}").format(step=s + 1,
                                                                        token=markdown.code(tokenizer.id_to_token(v)))
                               for s, v in plan.forced]))
if method == "sample":
    stretches_box, replay_box = st.columns([5, 1], vertical_alignment="center")
    lines = [_("Sampled with {stretches}.").format(stretches=_("; ").join(stretch_notes(plan)))]
    if plan.pending(settings):
        lines.append(_("New settings ({settings}) apply from step {step} on: the steps taken keep theirs. Replay with "
                       "these settings to sample every step again with them.").format(
                           settings=describe_sampling(settings), step=plan.taken + 1))
    stretches_box.caption(markdown.escape("\n".join(lines)))
    replay_box.button(_("Replay with these settings"), key="dec_replay", on_click=replay, args=(settings,),
                      disabled=plan.replay(settings) == plan, icon=":material/replay:", width="stretch",
                      help=_("Samples every step taken again with the settings above (forced tokens stay)."))
elif method == "beam":
    st.caption(_("Beam search ranks whole outputs, so a new width or length penalty searches the steps taken again."))

state.dec_step = min(max(state.get("dec_step", len(output)), 1), len(output))
if len(output) > 1:
    st.slider(_("Step to look at"), 1, len(output), key="dec_step")
st.query_params["step"] = str(state.dec_step)
t = state.dec_step - 1
prompt = "" if model.has_encoder else " ".join(map(markdown.code, tokenizer.labels(ids[0]))) + " →"  # then the output
chips = " ".join(markdown.marked(label) if i == t else markdown.code(label)
                 for i, label in enumerate(tokenizer.labels(output)))
written = markdown.escape(tokenizer.decode(output).replace(chr(10), " ⏎ "))
st.markdown(_("**Output so far** “{written}”: {prompt} {chips}").format(written=written, prompt=prompt, chips=chips))

row, step, chosen = decoded.trace_rows()[t], decoded.steps[t], output[t]
if method == "sample":  # a sampled step shows what it was drawn from, whatever the settings are now
    step_view = {name: value for name, value in plan.settings_at(t).items() if name != "seed"}
    chosen_from = _("drawn from ({settings})").format(settings=describe_sampling(step_view))
else:
    step_view, chosen_from = view, _("with these settings")
shown, probs = top_choices(step, row, 10, chosen=chosen, **step_view)
redrawn = step_view != dict(temperature=1.0, top_k=None, top_p=None)
series = {_("model (temperature 1)"): step.probs()[row, shown], chosen_from: probs} if redrawn else probs
bars, choice = st.columns([3, 2])
reads = html.escape(tokenizer.id_to_token(int(step.input[row])))  # plotly reads a few HTML tags in titles
ui.plotly_chart(bars, figures.probability_bars(tokenizer.labels(shown), series, chosen=shown.index(chosen),
                                               title=_("Step {step}: the next token after “{token}”").format(
                                                   step=t + 1, token=reads)), key="dec_bars")
p = step.probs()[row, chosen].item()
choice.markdown((_("**Step {step}** was forced to {token}, which the model gives {probability}. Entropy of the "
                   "distribution chosen from: {entropy} nats (0: certain).") if step.forced else
                 _("**Step {step}** chose {token}, which the model gives {probability}. Entropy of the distribution "
                   "chosen from: {entropy} nats (0: certain).")).format(
                     step=t + 1, token=markdown.code(tokenizer.id_to_token(chosen)), probability=f"{p:.1%}",
                     entropy=f"{step.entropy[row].item():.3f}"))
if state.get("dec_force_at") != (state.dec_for, t):  # offer the runner-up of this step
    state.dec_force_at = (state.dec_for, t)
    state.dec_force_token = next((i for i in shown if i != chosen and i in options), tokenizer.eos_id)
choice.selectbox(_("Token to force instead"), options, format_func=tokenizer.id_to_token, key="dec_force_token")
choice.button(_("Force it at step {step}").format(step=t + 1), key="dec_force", on_click=force, args=(t,),
              icon=":material/edit:")

st.subheader(_("Attention behind each step"))
kinds = [kind for kind in ("cross", "decoder self")
         if any(parse_pattern_name(name)[0] == kind for name in step.attention)]
rows = {kind: attention_rows(decoded, kind, steps=t + 1) for kind in kinds}
if not rows:
    st.info(_("{model} has no attention to show: its decoder reads the source only through one state.").format(
        model=markdown.escape(picked.name)))
else:
    n_layers, n_heads = next(iter(rows.values())).patterns.shape[:2]
    pick, all_box = st.columns([2, 1], vertical_alignment="bottom")
    layer, head = ui.layer_and_head(n_layers, n_heads, pick)
    all_heads = all_box.toggle(_("All heads at once"), key="dec_all_heads")
    st.caption(_("One row per step up to step {step} (the last row): where the position that reads that token "
                 "looks. Rows accumulate as decoding goes on; grey cells are positions not written yet.").format(
                     step=t + 1))
    for column, (kind, view_rows) in zip(st.columns(len(rows)), rows.items()):
        title = _(ui.KIND_LABELS[kind]) + ("" if all_heads else
                                           _(", layer {layer} head {head}").format(layer=layer, head=head))
        ui.plotly_chart(column,
            figures.attention_grid(view_rows.patterns, title, view_rows.masked, width=900 // len(rows))
            if all_heads else
            figures.attention_heatmap(view_rows.patterns[layer, head], tokenizer.labels(view_rows.queries),
                                      tokenizer.labels(view_rows.keys), title, view_rows.masked,
                                      x_title=_("source") if kind == "cross" else _("decoder sequence"),
                                      y_title=_("step reads"), width=900 // len(rows)),
            key=f"dec_{kind.replace(' ', '_')}")

if method == "beam":
    st.subheader(_("Beam search"))
    hypotheses = hypotheses_table(decoded, tokenizer)  # st.table wraps long outputs; its cells are Markdown
    st.table(hypotheses.assign(output=hypotheses["output"].map(markdown.code),
                               tokens=hypotheses["tokens"].map(markdown.code)).style.format(precision=3),
             hide_index=True)
    last = n_steps
    if n_steps > TREE_STEPS:
        last = ui.newest_slider(_("Tree: the steps up to"), list(range(TREE_STEPS, n_steps + 1)), "dec_tree_last",
                                follow=True, source=state.dec_for,
                                help=_("The tree shows {count} steps at a time, under the beams they extend.").format(
                                    count=TREE_STEPS))
    tree = figures.beam_tree(beam_tree(decoded, tokenizer, steps=(max(1, last - TREE_STEPS + 1), last)),
                             _("Every candidate each step looked at (hover over the grey ones)"))
    ui.plotly_chart(st.container(height=min(tree.layout.height + 30, 800), border=False), tree, key="dec_tree")

with st.expander(_("Every step as a table")):
    steps = steps_table(decoded, tokenizer)
    st.dataframe(steps, hide_index=True, key="dec_steps_table", column_config=numbers(steps))
with st.expander(_("Greedy, beam search and sampling side by side")):
    seed = settings.get("seed", 0)
    st.caption(_("Sampling with five seeds from {seed} at the temperature, top-k and top-p above; beam search with "
                 "the width and length penalty above (width 3 if not chosen). The log-probability is the model's "
                 "own, so greedy is not always the most likely whole output.").format(seed=seed))
    side_by_side = compare(picked, ui.model_key(picked), source, max_new, tuple(range(seed, seed + 5)),
                           tuple(view.items()), settings.get("width", 3), settings.get("length_penalty", 0.0))
    st.dataframe(side_by_side, hide_index=True, key="dec_compare", column_config=numbers(side_by_side))
