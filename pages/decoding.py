"""Step-by-step decoding: greedy, sampling and beam search one token at a time, with the distribution, the
attention and (beam search) the search tree behind every choice. Force a token and watch the rest change.

The run is fully determined by the input, the method's settings, the forced tokens and the number of steps
taken, so the session keeps only those (`dec_taken`, `dec_forced`) and decodes again (cached) on every run."""
import streamlit as st

from attnviz.app import figures, markdown, ui
from attnviz.decoding.search import METHODS
from attnviz.interpret.decoding_views import (attention_rows, beam_tree, compare_methods, hypotheses_table, steps_table,
                                              top_choices)
from attnviz.interpret.patterns import parse_pattern_name

ui.sidebar(__file__)

STOPS = {"eos": "ended with <eos>", "max_new_tokens": "reached the new-token limit",
         "max_len": "reached the longest sequence this model can read"}
state = st.session_state


@st.cache_data(max_entries=64, show_spinner=False)
def decode(_picked, key, ids, method, settings, forced, max_new_tokens):
    return METHODS[method](_picked.model, _picked.tokenizer, list(ids), max_new_tokens=max_new_tokens,
                          forced=dict(forced), **dict(settings))


@st.cache_data(max_entries=32, show_spinner="Decoding with every method…")
def compare(_picked, key, ids, max_new_tokens, seeds, view, width, length_penalty):
    return compare_methods(_picked.model, _picked.tokenizer, list(ids), max_new_tokens, seeds,
                           width=width, length_penalty=length_penalty, **dict(view))


def go_to(taken):
    state.dec_taken = state.dec_step = taken  # the slider jumps to the newest step (clamped below)


def reset():
    state.update(dec_taken=1, dec_forced={}, dec_step=1)


def force(t):
    state.dec_forced = {s: v for s, v in state.dec_forced.items() if s < t} | {t: state.dec_force_token}
    state.dec_taken, state.dec_step = max(state.dec_taken, t + 1), t + 1


st.title("Step-by-step decoding")
st.markdown("A model writes its output one token at a time: at each step it gives every token of its vocabulary "
            "a probability, and a **method** picks one. **Greedy** takes the most likely, **sampling** draws one "
            "(temperature, top-k and top-p reshape the distribution first), **beam search** keeps the few most "
            "likely partial outputs. Step through, change the settings, or force a token of your own.")
picked = ui.model_or_stop()
task = ui.task_or_stop(picked)
model, tokenizer = picked.model, picked.tokenizer
text = ui.input_text(task, "Source" if model.has_encoder else "Prompt (may be empty)")
try:  # a language model's prompt leaves room for at least one new token
    ids = task.encode_source(text, model.config.max_len - (0 if model.has_encoder else 1))  # (1, S)
except ValueError as error:
    st.error(f"Cannot decode this input: {error}.")
    st.stop()
if unknown := task.unknown_characters(text):
    st.warning(f"{picked.name} does not know {', '.join(map(repr, unknown))}: it reads "
               f"{'it' if len(unknown) == 1 else 'them'} as `<unk>`, so expect a strange output.")
room = model.config.max_len - (1 if model.has_encoder else ids.shape[1])
method, max_new, view, settings = ui.decoding_controls(tokenizer.vocab_size, room)

if state.get("dec_for") != (picked.name, text):  # a new model or input: start again
    state.dec_for = (picked.name, text)
    reset()
state.dec_taken = min(state.dec_taken, max_new)
source = tuple(ids[0].tolist())
decoded = decode(picked, ui.model_key(picked), source, method, tuple(settings.items()),
                 tuple(state.dec_forced.items()), state.dec_taken)
output = decoded.ids()
n_steps = len(decoded.steps)
done = n_steps < state.dec_taken or state.dec_taken >= max_new or (method != "beam" and decoded.stop[0] == "eos")

next_box, end_box, reset_box, status = st.columns([1, 1, 1, 4], vertical_alignment="center")
next_box.button("Next step", key="dec_next", on_click=go_to, args=(state.dec_taken + 1,), disabled=done,
                icon=":material/skip_next:", width="stretch")
end_box.button("Run to end", key="dec_run", on_click=go_to, args=(max_new,), disabled=done,
               icon=":material/fast_forward:", width="stretch")
reset_box.button("Reset", key="dec_reset", on_click=reset, icon=":material/restart_alt:", width="stretch")
status.caption(f"{n_steps} step{'s' * (n_steps != 1)} taken" + (f"; {STOPS[decoded.stop[0]]}" if done else "")
               + "".join(f"; step {s + 1} forced to `{tokenizer.id_to_token(v)}`" for s, v in state.dec_forced.items()))

state.dec_step = min(max(state.get("dec_step", len(output)), 1), len(output))
if len(output) > 1:
    st.slider("Step to look at", 1, len(output), key="dec_step")
t = state.dec_step - 1
prompt = "" if model.has_encoder else " ".join(map(markdown.code, tokenizer.labels(ids[0]))) + " →"  # then the new tokens
chips = " ".join(markdown.marked(label) if i == t else markdown.code(label)
                 for i, label in enumerate(tokenizer.labels(output)))
st.markdown(f"**Output so far** “{tokenizer.decode(output).replace(chr(10), ' ⏎ ')}”: {prompt} {chips}")

row, step, chosen = decoded.trace_rows()[t], decoded.steps[t], output[t]
shown, probs = top_choices(step, row, 10, chosen=chosen, **view)
redrawn = view != dict(temperature=1.0, top_k=None, top_p=None)
series = {"model (temperature 1)": step.probs()[row, shown], "with these settings": probs} if redrawn else probs
bars, choice = st.columns([3, 2])
ui.plotly_chart(bars, figures.probability_bars(
    tokenizer.labels(shown), series, chosen=shown.index(chosen),
    title=f"Step {t + 1}: the next token after “{tokenizer.id_to_token(int(step.input[row]))}”"), key="dec_bars")
p = step.probs()[row, chosen].item()
choice.markdown(f"**Step {t + 1}** {'was forced to' if step.forced else 'chose'} "
                f"`{tokenizer.id_to_token(chosen)}`, which the model gives {p:.1%}. Entropy of the distribution "
                f"chosen from: {step.entropy[row].item():.2f} nats (0: certain).")
options = [i for i in range(tokenizer.vocab_size) if i not in (tokenizer.pad_id, tokenizer.bos_id)]
if state.get("dec_force_at") != (state.dec_for, t):  # offer the runner-up of this step
    state.dec_force_at = (state.dec_for, t)
    state.dec_force_token = next((i for i in shown if i != chosen and i in options), tokenizer.eos_id)
choice.selectbox("Token to force instead", options, format_func=tokenizer.id_to_token, key="dec_force_token")
choice.button(f"Force it at step {t + 1}", key="dec_force", on_click=force, args=(t,), icon=":material/edit:")

st.subheader("Attention behind each step")
kinds = [kind for kind in ("cross", "decoder self")
         if any(parse_pattern_name(name)[0] == kind for name in step.attention)]
rows = {kind: attention_rows(decoded, kind, steps=t + 1) for kind in kinds}
if not rows:
    st.info(f"{picked.name} has no attention to show: its decoder reads the source only through one state.")
else:
    n_layers, n_heads = next(iter(rows.values())).patterns.shape[:2]
    pick, all_box = st.columns([2, 1], vertical_alignment="bottom")
    layer, head = ui.layer_and_head(n_layers, n_heads, pick)
    all_heads = all_box.toggle("All heads at once", key="dec_all_heads")
    st.caption(f"One row per step up to step {t + 1} (the last row): where the position that reads that token "
               "looks. Rows accumulate as decoding goes on; grey cells are positions not written yet.")
    for column, (kind, view_rows) in zip(st.columns(len(rows)), rows.items()):
        title = ui.KIND_LABELS[kind] + ("" if all_heads else f", layer {layer} head {head}")
        ui.plotly_chart(column,
            figures.attention_grid(view_rows.patterns, title, view_rows.masked, width=900 // len(rows))
            if all_heads else
            figures.attention_heatmap(view_rows.patterns[layer, head], tokenizer.labels(view_rows.queries),
                                      tokenizer.labels(view_rows.keys), title, view_rows.masked,
                                      x_title="source" if kind == "cross" else "decoder sequence",
                                      y_title="step reads", width=900 // len(rows)),
            key=f"dec_{kind.replace(' ', '_')}")

if method == "beam":
    st.subheader("Beam search")
    st.dataframe(hypotheses_table(decoded, tokenizer), hide_index=True, key="dec_hypotheses")
    ui.plotly_chart(st, figures.beam_tree(beam_tree(decoded, tokenizer), "Every candidate each step looked at "
                                      "(hover over the grey ones)"), key="dec_tree")

with st.expander("Every step as a table"):
    st.dataframe(steps_table(decoded, tokenizer), hide_index=True, key="dec_steps_table")
with st.expander("Greedy, beam search and sampling side by side"):
    seed = settings.get("seed", 0)
    st.caption(f"Sampling with five seeds from {seed} at the temperature, top-k and top-p above; beam search "
               "with the width and length penalty above (width 3 if not chosen). The log-probability is the "
               "model's own, so greedy is not always the most likely whole output.")
    st.dataframe(compare(picked, ui.model_key(picked), source, max_new, tuple(range(seed, seed + 5)),
                         tuple(view.items()), settings.get("width", 3), settings.get("length_penalty", 0.0)),
                 hide_index=True, key="dec_compare")
