"""Train live: pick a task, a model and its settings (or a class preset), start, and watch the loss fall and the
attention form. Runs live on the server, not in the tab: a reload or another page finds yours again (?run=NAME),
and a run whose tab is gone finishes and is saved. A run and its model belong to the browser that started it
(ui.browser_owner): anyone with the link may watch, only the owner stops, saves or deletes."""
import streamlit as st

from attnviz.app import figures, ui
from attnviz.app.markdown import code, escape
from attnviz.app.train_view import (MORE_FIELDS, TRAIN_FIELDS, USER_TASKS, attention_kinds, curve_figures,
                                    induction_figures, lapse_pattern, name_base, output_history, preset_fixed_sizes,
                                    preset_for_task, preset_labels, preset_name, preset_settings, probe_label,
                                    probe_target, refused_field, run_metrics, run_notices, runs_table, size_fields,
                                    size_note, task_architectures)
from attnviz.data.tasks import TASKS, make_task
from attnviz.i18n import _, ngettext
from attnviz.models.architectures import ARCHITECTURES
from attnviz.training.checkpoint_names import delete_checkpoint
from attnviz.training.owners import owner_of
from attnviz.training.plan import free_name, name_taken, plan_run, start

ui.sidebar(__file__)

registry = ui.training_registry()  # the same runs on every page, also after Streamlit reloads attnviz.training.runs
owner_token = ui.browser_owner()  # never shown: runs and models say who trained them by the name given
st.title(_("Train live"))
slots = registry.max_concurrent
st.caption(_("Train a small model on this server and watch its loss fall and its attention pattern form.") + " "
           + ngettext("{slots} run trains at once here; more wait in a queue.",
                      "{slots} runs train at once here; more wait in a queue.", slots).format(slots=slots))


@st.cache_resource(max_entries=16, show_spinner=_("Preparing the task…"))
def cached_task(name, data=None):  # shared by every session; training only reads a task
    return make_task(name, **({"text" if name == "text" else "tsv": data} if data is not None else {}))


def suggest_name(base):
    st.session_state["train_name_base"] = base
    st.session_state["train_name"] = name = free_name(base, registry)
    st.session_state.setdefault("train_names_suggested", set()).add(name)


def suggested(name):
    """Whether the name box's `name` is one this tab's form suggested (or its run's), not one the user typed. Any
    of them, not only the newest: a rerun the browser asked for (the live part's, every second) before it heard of
    a new suggestion brings the name box's old value back, and Start would stay off with "exists already"."""
    return name in st.session_state.get("train_names_suggested", ()) or name == st.session_state.get("train_run")


def keep_name_suggested(base):
    """Until the user types a name, the name box holds a free name made from `base`: a new one when the task or the
    architecture change `base`, or when someone else took the one suggested."""
    name = st.session_state.get("train_name")
    if name is None or (suggested(name) and (base != st.session_state.get("train_name_base")
                                              or name_taken(name, registry))):
        suggest_name(base)


def apply_preset():
    for key, value in preset_settings(st.session_state["train_preset"]).items():
        st.session_state[f"train_{key}"] = value


def follow_task():
    """A new task: the preset box moves to a preset for it, whose settings fill the form (the chosen task stays)."""
    task_name = st.session_state["train_task"]
    label = preset_for_task(st.session_state["train_preset"], task_name)
    if label != st.session_state["train_preset"]:
        st.session_state["train_preset"] = label
        apply_preset()
        st.session_state["train_task"] = task_name


@ui.in_session_language  # a callback: the library's refusal in the session's language
def start_run(plan):
    try:
        run = start(plan, owner_token, registry,
                    rename_from=st.session_state["train_name_base"] if suggested(plan.name) else None)
        st.session_state["train_run"] = run.name
    except ValueError as error:  # someone took the name the user typed a moment ago
        st.session_state["train_start_error"] = str(error)
    suggest_name(st.session_state["train_name_base"])  # ready for the next run


# The run this tab follows: from the session, else from the link (a reload, or a link shared in class).
run_name = ui.linked_state("train_run", "run")
run = registry.find(run_name) if run_name else None
live = run is not None and not run.done
mine = run is not None and run.owner == owner_token
active = live and mine  # your own run is going: one at a time

# The form is a link: the preset, task, architecture and every number are in the URL (a teacher hands out one link
# per exercise), and a new session starts from the link's values, the preset's where the link has none.
with st.expander(_("Set up a run"), expanded=run is None, icon=":material/tune:"):
    label = ui.choice(_("Preset"), preset_labels(), "train_preset", st.selectbox, "preset", on_change=apply_preset,
                      format_func=_, help=_("Fills in every setting below; change any of them afterwards."))
    preset = preset_settings(label)
    left, right = st.columns(2)
    tasks = list(TASKS)
    task_name = ui.choice(_("Task"), tasks, "train_task", left.selectbox, "task", tasks.index(preset["task"]),
                          on_change=follow_task)
    left.caption(_(TASKS[task_name]))  # beside the choice: a description in the box would be cut short
    upload = right.file_uploader(_("Your {what} (UTF-8, at most 5 MB)").format(what=_(USER_TASKS[task_name])),
                                 key="train_upload") if task_name in USER_TASKS else None
    architectures = task_architectures(task_name)
    architecture = ui.choice(_("Architecture"), architectures, "train_architecture", left.selectbox, "architecture",
                             architectures.index(preset["architecture"]) if preset["architecture"] in architectures
                             else 0)
    left.caption(_(ARCHITECTURES[architecture]))
    fixed = preset_fixed_sizes(label, architecture)  # e.g. learned positions
    fields = size_fields(architecture)
    sizes, notes = ui.number_inputs(fields, "train_", preset, linked=True)  # each with a container under it
    if fixed:
        st.caption(_("From the preset as well: {settings}").format(
            settings=", ".join(f"{key} = {value}" for key, value in fixed.items())))
    train, train_notes = ui.number_inputs(TRAIN_FIELDS, "train_", preset, linked=True)
    with st.popover(_("More settings"), icon=":material/settings:"):
        more, more_notes = ui.number_inputs(MORE_FIELDS, "train_", preset, linked=True, per_row=3)
    train, notes = train | more, notes | train_notes | more_notes
    base = name_base(label, task_name, architecture)
    keep_name_suggested(base)
    left, right = st.columns(2)
    name = left.text_input(_("Save as"), key="train_name",
                           help=_("The model is saved under this name when the run ends."))
    owner = right.text_input(_("Your name (optional)"), key="train_owner", max_chars=40,
                             help=_("Shown in the table of runs on this server."))
    task = plan = refused = None
    if task_name in USER_TASKS and upload is None:
        st.info(_("Upload a {what} to train on.").format(what=_(USER_TASKS[task_name])))
    else:
        try:
            task = cached_task(task_name, upload.getvalue() if upload else None)
        except ValueError as error:  # an upload's problem names its line
            st.error(escape(f"{upload.name}: {error}" if upload else str(error)))
    if task is not None:
        try:
            plan = plan_run(task, architecture, fixed | sizes, train, name, owner,
                            preset_name(label) if base == preset_name(label) else "", registry)
            st.caption(":material/check_circle: " + ngettext(
                "{size}; {count} training example", "{size}; {count} training examples", len(task.train)).format(
                size=size_note(plan.n_parameters), count=f"{len(task.train):,}"))
        except ValueError as error:  # a setting that cannot work, a size above the limit, a taken name
            refused = refused_field(error, fields + TRAIN_FIELDS + MORE_FIELDS)
            (notes[refused.key] if refused else st).error(ui.message(error), icon=":material/block:")
    why_not = refused and (
        _("Start is off until {field} holds a possible value: see the message under it (in More settings).")
        if refused in MORE_FIELDS else
        _("Start is off until {field} holds a possible value: see the message under it.")).format(
            field=_(refused.label))
    st.button(_("Start training"), type="primary", key="train_start", on_click=start_run, args=(plan,),
              disabled=plan is None or active, icon=":material/play_arrow:", help=why_not)
    if why_not:
        st.caption(f":material/block: {escape(why_not)}")
    if "train_start_error" in st.session_state:
        st.error(escape(st.session_state.pop("train_start_error")))
    if active:
        st.caption(_("Your run is going: stop it, or let it finish, to start another."))

if run_name and run is None:
    st.info(_("The run {name} is not on this server any more (it restarted). If it had finished, it was saved: "
              "look for it in the model picker.").format(name=code(run_name)))


def timelapse(run, snapshots):
    """The probes' attention at each snapshot on a slider, and their greedy outputs beside it."""
    task = run.task
    st.subheader(_("Attention time-lapse"))
    steps = [snapshot["step"] for snapshot in snapshots]
    follow = st.session_state.get("lapse_follow", True) if run.done else \
        st.toggle(_("Follow the newest snapshot"), value=True, key="lapse_follow")
    step = ui.newest_slider(_("Training step"), steps, "lapse_step", follow, run.name,
                            help=_("Slide to watch the attention form."),
                            disabled=(follow and not run.done) or len(steps) < 2)
    patterns = snapshots[steps.index(step)]["patterns"]
    controls, heatmap, outputs = st.columns([1, 2, 1.3])
    probe = ui.choice(_("Probe input"), range(len(task.probes)), "lapse_probe", controls.selectbox,
                      format_func=lambda i: probe_label(task, i))
    kinds = attention_kinds(patterns)  # the default is the last kind: cross-attention when there is one
    kind = ui.choice(_("Attention"), kinds, "lapse_kind", controls.radio, fallback=-1,
                     format_func=lambda kind: _(ui.KIND_LABELS[kind]))
    layer = ui.choice(_("Layer"), range(kinds[kind]), "lapse_layer", controls.selectbox)
    weights, queries, keys, masked = lapse_pattern(task, patterns, probe, kind, layer)
    head = ui.choice(_("Head"), range(len(weights)), "lapse_head", controls.selectbox)
    title = _("Step {step}: {attention}, layer {layer}, head {head}").format(
        step=step, attention=_(ui.KIND_LABELS[kind]), layer=layer, head=head)
    pattern = ui.shared_figures(("lapse", run.name, run.started_at, step, probe, kind, layer, head),
                                lambda: figures.attention_heatmap(weights[head], queries, keys, title, masked=masked))
    ui.plotly_chart(heatmap, pattern, key="lapse_heatmap")
    outputs.markdown(_("**Greedy output** (target: {target})").format(target=code(probe_target(task, probe))))
    outputs.dataframe(output_history(task, snapshots, probe, steps.index(step)), hide_index=True,
                      key="lapse_outputs", height=360)


@ui.in_session_language
def save_anyway(run):
    try:
        run.save_anyway(owner_token)
    except ValueError as error:  # someone took the name while the run stood unsaved
        st.session_state["train_save_error"] = str(error)


def run_panel(run, live, mine):
    """One run: its status, numbers, curves and attention time-lapse; Stop and Save anyway for its owner only."""
    snap = run.snapshot()
    title = _("Run {name}") if mine or not snap.trained_by else _("Run {name} by {owner}")  # who, if not you
    st.subheader(escape(title.format(name=run.name, owner=snap.trained_by)))
    for column, (label, value) in zip(st.columns([1, 1, 1, 1, 1.6]), run_metrics(run, snap, live).items()):
        column.metric(label, value)
    for level, text in run_notices(run, snap):
        getattr(st, level)(text)  # st.info, st.error or st.success
    if live and mine:
        st.button(_("Stop"), key="train_stop", on_click=run.stop, kwargs={"owner": owner_token, "timeout": 0},
                  icon=":material/stop:")
    if mine and run.done and snap.status == "diverged" and not snap.saved_path:
        st.button(_("Save anyway"), key="train_save_anyway", on_click=save_anyway, args=(run,), icon=":material/save:")
        if "train_save_error" in st.session_state:
            st.error(escape(st.session_state.pop("train_save_error")))
    elif snap.status == "diverged" and snap.saved_path:
        st.text(_("Saved anyway as {name}.").format(name=run.name))
    # Every tab watching the run redraws these every second or two: built once per new step, for all of them.
    if snap.history["step"]:  # none while queued: nothing to draw, and no work for a busy server
        curves = ui.shared_figures(("curves", run.name, run.started_at, len(snap.history["step"]),
                                    len(snap.evals["step"])), lambda: curve_figures(snap))
        ui.chart_rows(curves, (("loss", "accuracy"), ("lr", "speed")), "curve_")
    if snap.snapshots and run.task.name == "induction":  # the moment an induction head forms
        induction = ui.shared_figures(("induction", run.name, run.started_at, len(snap.snapshots)),
                                      lambda: induction_figures(run.task, snap.snapshots))
        ui.chart_rows(induction, (("heads", "halves"),), "induction_")
    if snap.snapshots:
        timelapse(run, snap.snapshots)


# One fragment redraws the page's live part. (Tabs that went blank under load, "'setIn' cannot be called on an
# ElementNode", were lost to Streamlit's message cache, which .streamlit/config.toml turns off.)
@st.fragment(run_every=1.0 if live else 2.0 if any(not r.done for r in registry.runs) else None)
@ui.in_session_language  # a fragment's rerun skips ui.sidebar
def live_view():
    if live and run.done:
        st.rerun()  # the run ended: redraw the page once (the sidebar lists the saved model) and stop polling
    if run is not None:
        run_panel(run, live, mine)
    st.subheader(_("Runs on this server"))
    ui.table_or_caption(runs_table(owner_token, registry), _("No runs yet."), key="runs_table")


live_view()


@ui.in_session_language
def delete_model(name):
    try:
        delete_checkpoint(name, owner_token)
        st.session_state["train_deleted"] = name
    except ValueError as error:  # being trained or saved right now
        st.session_state["train_delete_error"] = str(error)


yours = [info.name for info in ui.checkpoints() if not info.shipped and owner_of(info.meta) == owner_token]
if yours:
    st.subheader(_("Your models"))
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    doomed = left.selectbox(_("Trained in this browser"), yours, key="train_delete_choice",
                            help=_("Only the models you trained here are listed: you delete yours, nobody else's."))
    right.button(_("Delete"), key="train_delete", on_click=delete_model, args=(doomed,), icon=":material/delete:")
if "train_deleted" in st.session_state:
    st.success(_("Deleted {name}.").format(name=escape(st.session_state.pop("train_deleted"))))
if "train_delete_error" in st.session_state:
    st.error(escape(st.session_state.pop("train_delete_error")))
