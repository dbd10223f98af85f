"""The models at hand: the checkpoints (read again only when a folder changes), the sidebar's model picker, cached
model loading shared by all sessions, who owns what, and the process-wide training registry and MiniLM."""
import secrets
from pathlib import Path

import streamlit as st

from attnviz.app.markdown import code
from attnviz.app.owner import owner_token
from attnviz.i18n import _, current_language
from attnviz.training import checkpoint_folder
from attnviz.training.checkpoint import load_checkpoint
from attnviz.training.checkpoint_list import list_checkpoints
from attnviz.training.owners import owner_of, trained_by
from attnviz.training.runs import REGISTRY


def checkpoints():
    """Every checkpoint (`CheckpointInfo` list), read again only when a checkpoint folder changes.

    Reading every meta.json costs most of a rerun; a save renames its folder into place, which changes
    the folder's modification time, so a new model still shows at once."""
    folders = (checkpoint_folder.SHIPPED_DIR, checkpoint_folder.USER_DIR)
    return _checkpoints(tuple((str(d), d.stat().st_mtime_ns if d.exists() else 0) for d in folders))


@st.cache_resource(max_entries=4, show_spinner=False)
def _checkpoints(folder_stamps):
    return list_checkpoints()


def _keep_picked_model():
    st.session_state["model_choice"] = st.session_state["model"]
    st.session_state.pop("model_missing", None)


def model_picker():
    """Choose a checkpoint (shipped or your own); shared by all pages and kept in the URL as ?model=NAME.

    Returns the chosen `CheckpointInfo`, or None when there is no model yet.
    """
    infos = {info.name: info for info in checkpoints()}
    if not infos:
        st.session_state.pop("model_info", None)
        st.sidebar.info(_("No trained model yet: train one on **Train live** or with `python -m attnviz train`."))
        return None
    if st.session_state.get("model_choice") not in infos:  # first visit, a shared link, or the model was deleted
        wanted = st.query_params.get("model")
        st.session_state["model_choice"] = wanted if wanted in infos else default_model(infos.values())
        if wanted and wanted not in infos:  # a mistyped link, or a model deleted since: said until one is picked
            st.session_state["model_missing"] = wanted
    st.session_state["model"] = st.session_state["model_choice"]  # a widget's own state ends with its page
    owner = browser_owner()
    # labelled now, in the session's language: Streamlit may call a format_func outside the page's run
    labels = {name: model_label(info, owner) for name, info in infos.items()}
    name = st.sidebar.selectbox(_("Model"), list(infos), key="model", format_func=labels.get,
                                on_change=_keep_picked_model,
                                help=_("Every page uses this model. Shipped models come with attnviz; "
                                       "yours were trained here."))
    if "model_missing" in st.session_state:
        st.sidebar.warning(_("The model {wanted} is not on this server: showing {name}.").format(
            wanted=code(st.session_state["model_missing"]), name=code(name)), icon=":material/warning:")
    st.query_params["model"] = name
    st.session_state["model_info"] = infos[name]
    return infos[name]


def selected_model():
    """The `Checkpoint` picked in the sidebar (loaded and cached), or None when there is no model yet."""
    info = st.session_state.get("model_info")
    return load_model(info) if info else None


def default_model(infos):
    """A first-time visitor starts on a Transformer (every page has attention to show), shipped before yours."""
    ranked = sorted(infos, key=lambda info: (info.meta.get("architecture") != "transformer", not info.shipped))
    return ranked[0].name


def model_label(info, owner):
    """'NAME (task)' for a shipped model, 'NAME (task, yours)' for one `owner` trained, else 'NAME (task, by WHO)'."""
    task = (info.meta.get("task") or {}).get("name", "?")
    whose = "" if info.shipped else _(", yours") if owner_of(info.meta) == owner else \
        _(", by {owner}").format(owner=trained_by(info.meta))
    return f"{info.name} ({task}{whose})"


def browser_owner():
    """This browser's owner token (see attnviz.app.owner for why the XSRF cookie): the same after a reload and in
    every tab of the browser, never in a link. Without the cookie, a random token for this session."""
    return owner_token(st.context.cookies) or st.session_state.setdefault("owner_token", secrets.token_hex(16))


@st.cache_resource(max_entries=8, show_spinner=False)  # the spinner is `load_model`'s, in the session's language
def _load(path, modified_ns):  # modified_ns: a model saved again under the same name is loaded afresh
    return load_checkpoint(path)


def load_model(info):
    """The `Checkpoint` behind a picker choice, cached for all sessions: read it, never modify it."""
    path = Path(info.path)
    with st.spinner(_("Loading the model…")):
        return _load(str(path), path.stat().st_mtime_ns if path.exists() else 0)


@st.cache_resource
def training_registry():
    """The process-wide `RunRegistry` of training runs, kept by Streamlit: it outlives a reload of
    attnviz.training.runs after a source edit, so every page keeps finding (and capping) the same runs."""
    return REGISTRY


def minilm():
    """The pretrained MiniLM, loaded once per process and shared (its methods lock around the hooks)."""
    with st.spinner(_("Loading MiniLM…")):
        return _minilm()


@st.cache_resource(show_spinner=False)  # the spinner is `minilm`'s, in the session's language
def _minilm():
    from attnviz.models import pretrained
    return pretrained.load_minilm()


def model_key(picked):
    """What names a loaded `Checkpoint` in `st.cache_data` keys (pass the checkpoint itself as `_picked`), with the
    session's language: a cached result may hold text (notes, table headers, figure labels) in that language."""
    path = Path(picked.path)
    return str(path), path.stat().st_mtime_ns if path.exists() else 0, current_language()
