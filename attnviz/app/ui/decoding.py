"""The decoding page's controls: the method and its settings in one row, all kept in the URL."""
import streamlit as st

from attnviz.app.markdown import escape
from attnviz.app.ui.widgets import choice
from attnviz.i18n import N_, _
from attnviz.interpret.decoding_plan import LIMITS, parse_number, sampling_settings


DECODING_METHODS = {"greedy": N_("Greedy"), "sample": N_("Sampling"), "beam": N_("Beam search")}


def decoding_controls(vocab_size, room):
    """The decoding method and its settings in one row, all kept in the URL: (method, max new tokens, view, settings).

    `view` (temperature, top_k, top_p) reshapes the distribution shown; `settings` are the method's own arguments.
    A link's value that does not fit a widget falls back to its default, and a warning says so."""
    labels = {name: _(label) for name, label in DECODING_METHODS.items()}  # translated now, in this page run
    method = choice(_("Method"), DECODING_METHODS, "method", st.radio, "method", horizontal=True,
                    format_func=labels.get)
    limits = dict(LIMITS, top_k=(0, vocab_size), max_new=(1, room))
    defaults = dict(max_new=min(40, room), temperature=1.0, top_k=0, top_p=1.0, seed=0, width=3, length_penalty=0.0)
    own = {"sample": ["seed"], "beam": ["width", "length_penalty"]}.get(method, [])  # the method's own settings
    shown = ["max_new", "temperature", "top_k", "top_p", *own]
    for name in shown:
        _from_link(f"dec_{name}", name, *limits[name], defaults[name])
    st.session_state.dec_max_new = min(st.session_state.dec_max_new, room)
    limit, temperature_box, top_k_box, top_p_box, extra, extra2 = st.columns(6)
    max_new = limit.number_input(_("Max new tokens"), 1, room, key="dec_max_new")
    temperature = temperature_box.slider(_("Temperature"), *limits["temperature"], step=0.05, key="dec_temperature",
                                         help=_("Divides the scores before the softmax: below 1 sharpens, above 1 "
                                                "flattens."))
    top_k = top_k_box.number_input(_("Top-k (0: all)"), *limits["top_k"], key="dec_top_k",
                                   help=_("Keep only the k most likely tokens."))
    top_p = top_p_box.slider(_("Top-p"), *limits["top_p"], step=0.05, key="dec_top_p",
                             help=_("Keep the most likely tokens until their probability reaches p (nucleus "
                                    "sampling)."))
    view = {name: value for name, value in sampling_settings(temperature, top_k, top_p, None).items() if name != "seed"}
    settings = {}
    if method == "sample":
        settings = {**view, "seed": extra.number_input(_("Seed"), *limits["seed"], key="dec_seed")}
    elif method == "beam":
        width = extra.slider(_("Beam width"), *limits["width"], key="dec_width")
        settings = dict(width=width, n_best=width, length_penalty=extra2.slider(
            _("Length penalty"), *limits["length_penalty"], step=0.1, key="dec_length_penalty",
            help=_("Hypotheses are ranked by log-prob / length^penalty: 0 ranks by log-prob, more favours longer "
                   "ones.")))
    for name in defaults:
        if name in shown:
            st.query_params[name] = str(st.session_state[f"dec_{name}"])
        elif name in st.query_params:
            del st.query_params[name]
    if method != "sample":
        st.caption(_("{method} does not use temperature, top-k or top-p: they only redraw the chart below.").format(
            method=labels[method]))
    return method, max_new, view, settings


def _from_link(key, param, low, high, default):
    """Give a widget's session key its value from the URL (?param=) when the session has none yet, else `default`;
    a value that is not a number or out of [low, high] falls back to `default` with a warning."""
    if key in st.session_state:
        return
    st.session_state[key] = default
    if param in st.query_params:
        try:
            st.session_state[key] = parse_number(st.query_params[param], param, low, high)
        except ValueError as error:
            st.warning(escape(_("The link's {error}: using {default}.").format(error=error, default=default)))
