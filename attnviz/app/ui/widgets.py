"""Small widgets any page can use, whose values are kept in the session and, where the page asks, in the URL: a
reload or a shared link restores them, and a link's value that does not fit falls back with a note."""
import math
import re

import streamlit as st

from attnviz.app.markdown import code, escape
from attnviz.i18n import _


MAX_INPUT_CHARS = 1000  # the input travels in the URL; models read far fewer tokens anyway


def message(error):
    """An error's text as a sentence on the page, escaped (it may quote what the user typed): "line 2 of ..."
    becomes "Line 2 of ...", while a message that starts with a name ("d_model=64 is not possible", "'x' exists
    already") keeps it as it is spelled."""
    text = str(error)
    return escape(text[:1].upper() + text[1:] if re.match(r"[a-z]+ ", text) else text)


def choice(label, options, key, widget=st.selectbox, param=None, fallback=0, **kwargs):
    """A choice (`widget`: a selectbox, a radio, ...) kept in the session under `key` and, given `param`, in the
    URL as ?param=..., so a reload or a shared link restores it.

    A value the options do not hold (another model has fewer layers, heads or probes) falls back to the URL's value
    when the options hold that, else to options[fallback]; a link's value that is not among the options is said so."""
    options = list(options)
    if st.session_state.get(key) not in options:
        by_text = {str(option): option for option in options}
        wanted = st.query_params.get(param) if param else None
        if wanted is not None and wanted not in by_text and key not in st.session_state:  # a link's, not ours
            st.warning(_("The link asks for {name} {value}, which is not one of the choices here: {fallback} instead.")
                       .format(name=param, value=code(wanted), fallback=code(options[fallback])),
                       icon=":material/link_off:")
        st.session_state[key] = by_text.get(wanted, options[fallback])
    value = widget(label, options, key=key, **kwargs)
    if param:
        st.query_params[param] = str(value)
    return value


def _keep_choice(key):
    st.session_state[f"{key}_kept"] = st.session_state[key]


def carried_choice(label, options, key, widget, **kwargs):
    """A `choice` kept in the URL as ?key=... that also carries from page to page (explorer → mechanics →
    decoding): a widget's own state ends with the page that drew it, so its value is kept beside it, under
    key + "_kept", and handed to the widget of the same key on whichever page draws it next."""
    options = list(options)
    if st.session_state.get(f"{key}_kept") in options:
        st.session_state[key] = st.session_state[f"{key}_kept"]
    value = choice(label, options, key, widget, key, on_change=_keep_choice, args=(key,), **kwargs)
    st.session_state[f"{key}_kept"] = value
    return value


def linked_slider(label, low, high, default, key, param, where=st, **kwargs):
    """A whole-number slider kept in the session (beside its widget, like `carried_choice`) and in the URL as
    ?param=..., so a reload or a shared link restores it; a value outside [low, high] is clamped to it."""
    value = st.session_state.get(f"{key}_kept")
    if value is None:
        try:
            value = int(st.query_params.get(param, default))
        except ValueError:  # not a number: a link typed by hand
            value = default
    st.session_state[key] = min(max(value, low), high)
    value = where.slider(label, low, high, key=key, on_change=_keep_choice, args=(key,), **kwargs)
    st.session_state[f"{key}_kept"] = value
    st.query_params[param] = str(value)
    return value


def linked_text(widget, label, box, kept, param, default, limit=MAX_INPUT_CHARS, **kwargs):
    """A text box (`widget`: st.text_input or st.text_area, keyed `box`) whose text is kept in the session under
    `kept` and in the URL as ?param=..., so it survives switching pages and travels with a shared link.

    Any length may be typed or pasted (a box with a limit would drop a longer paste without a word); the first
    `limit` characters are kept, and a page that reads fewer tokens cuts them with a warning."""
    if kept not in st.session_state:
        st.session_state[kept] = st.query_params.get(param, default)[:limit]
    st.session_state[box] = st.session_state[kept]  # a widget's own state ends with its page
    text = widget(label, key=box, on_change=_keep_text, args=(box, kept, limit), **kwargs)[:limit]
    st.query_params[param] = text
    return text


def _keep_text(box, kept, limit):
    st.session_state[kept] = st.session_state[box][:limit]


def linked_state(key, param):
    """A session value restored from, and kept in, the URL as ?param=... (a reload or a shared link finds it)."""
    if key not in st.session_state and param in st.query_params:
        st.session_state[key] = st.query_params[param]
    value = st.session_state.get(key)
    if value:
        st.query_params[param] = value
    return value


def number_inputs(fields, prefix, defaults, where=st, linked=False, per_row=None):
    """Number inputs side by side (in rows of `per_row`), one per field (`.key`, `.label`, `.step`, `.help`), keyed
    prefix + field.key. Returns ({field.key: value}, {field.key: a container under its input}): the page says there
    what is wrong with a value.

    The inputs have no bounds: Streamlit's bounds refuse a typed value in the browser and keep the last one, so the
    form would go on with a number the user no longer sees. Every value reaches the page, which checks it. A field
    the session has no value for starts at defaults[field.key], or with `linked` at the URL's ?<field.key>= when
    that is a number for the field (a link's value that is not is said so under the field); `linked` also keeps the
    value in the URL."""
    values, notes = {}, {}
    per_row = per_row or len(fields)
    columns = [column for i in range(0, len(fields), per_row) for column in where.columns(per_row)]
    for f, column in zip(fields, columns):
        key, whole = prefix + f.key, not isinstance(f.step, float)
        wanted = st.query_params.get(f.key) if linked else None
        if key not in st.session_state:
            value = _number(wanted, whole) if wanted is not None else None
            st.session_state[key] = defaults[f.key] if value is None else value
        values[f.key] = column.number_input(f.label, step=f.step, key=key, help=f.help or None,
                                            format=None if whole else "%g")
        notes[f.key] = column.container()
        if wanted is not None and _number(wanted, whole) is None:
            note = _("The link's {name} {value} is not a whole number: {fallback} instead.") if whole else \
                _("The link's {name} {value} is not a number: {fallback} instead.")
            notes[f.key].warning(note.format(name=f.key, value=code(wanted), fallback=values[f.key]),
                                 icon=":material/link_off:")
        if linked:
            st.query_params[f.key] = str(values[f.key])
    return values, notes


MAX_WHOLE = 2**53 - 1  # what a number input can hold exactly (the browser's safe integers)


def _number(text, whole):
    """A URL value as the number a field holds (int for a whole-number field), or None when it is none."""
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value) or (whole and not (value.is_integer() and abs(value) <= MAX_WHOLE)):
        return None
    return int(value) if whole else value


def newest_slider(label, values, key, follow, source=None, **kwargs):
    """A select slider over a list that grows (say snapshots): it moves to the newest value when the list grows, or
    `source` (what it lists) changes, while `follow` is on, and when its value is gone."""
    grown = st.session_state.get(f"{key}_seen") != (source, len(values))
    st.session_state[f"{key}_seen"] = (source, len(values))
    if (follow and grown) or st.session_state.get(key) not in values:
        st.session_state[key] = values[-1]
    return st.select_slider(label, values, key=key, **kwargs)


def table_or_caption(table, empty_note, **kwargs):
    """A dataframe without its index, or a caption when it has no rows."""
    if table.empty:
        st.caption(empty_note)
    else:
        st.dataframe(table, hide_index=True, **kwargs)
