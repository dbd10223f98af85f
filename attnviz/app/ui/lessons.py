"""The course: any lesson of attnviz.app.course, drawn from its data (text, formula, inputs, live figure, "try this"
with the answer on demand, links to the full pages, previous and next)."""
import streamlit as st

from attnviz.app.markdown import escape
from attnviz.app.ui.charts import plotly_chart
from attnviz.app.ui.page_table import PAGES
from attnviz.app.ui.widgets import MAX_INPUT_CHARS, choice
from attnviz.i18n import _, current_language


def lesson_picker(lessons):
    """The lesson to show, kept in the URL as ?lesson=slug (?lesson=3 opens the third and becomes its slug) and in
    the session, so the menu's link back to the course finds the learner's lesson."""
    by_slug = {lesson.slug: lesson for lesson in lessons}
    slugs = list(by_slug)
    wanted = st.query_params.get("lesson", "")
    if wanted.isdigit() and 1 <= int(wanted) <= len(slugs):
        st.query_params["lesson"] = slugs[int(wanted) - 1]
    if "lesson" not in st.session_state and "course_lesson" in st.session_state:  # a widget's state ends with its page
        st.session_state["lesson"] = st.session_state["course_lesson"]
    slug = st.session_state["course_lesson"] = choice(_("Lesson"), slugs, "lesson", param="lesson",
                                                      format_func=lambda s: f"{slugs.index(s) + 1}. {by_slug[s].title}")
    return by_slug[slug]


@st.cache_data(max_entries=256, show_spinner=False)  # the spinner is `show_lesson`'s, in the session's language
def _lesson_figure(_lesson, slug, values, language):  # language: the figure's labels are in it
    return _lesson.figure(dict(values))


def lesson_inputs(lesson):
    """The lesson's declared inputs in one row: {input key: value}. Kept in the session beyond the widgets' own
    state, which ends with the page, so a learner back from a full page finds the lesson as they left it."""
    values, kept = {}, st.session_state.setdefault("lesson_inputs", {})
    for column, field in zip(st.columns(len(lesson.inputs)) if lesson.inputs else [], lesson.inputs):
        key, help_text = f"lesson_{lesson.slug}_{field.key}", field.help or None
        st.session_state.setdefault(key, kept.get(key, field.default))
        if field.options:
            value = column.selectbox(field.label, list(field.options), format_func=field.options.get, key=key,
                                     help=help_text)
        elif isinstance(field.default, str):
            box = column.text_area if field.lines else column.text_input
            value = box(field.label, max_chars=MAX_INPUT_CHARS, key=key, help=help_text)
        else:
            value = column.number_input(field.label, field.low, field.high, step=field.step, key=key, help=help_text)
        values[field.key] = kept[key] = value
    return values


def _go_to_lesson(slug):
    st.session_state["lesson"] = slug


def show_lesson(lesson, lessons):
    """A lesson: its text and formula, its inputs, its live figure, "try this" with the answer on demand, the links
    to the full pages, and the previous and next lessons."""
    st.header(f"{lessons.index(lesson) + 1}. {lesson.title}")
    st.markdown(lesson.text)
    if lesson.formula:
        st.latex(lesson.formula)
    values = lesson_inputs(lesson)
    try:
        with st.spinner(_("Computing the lesson's figure…")):
            drawn = _lesson_figure(lesson, lesson.slug, tuple(sorted(values.items())), current_language())
    except (ValueError, ImportError) as error:  # input the models cannot take, or MiniLM not installed
        st.warning(escape(error))
    else:
        plotly_chart(st, drawn.figure, "lesson_figure")
        st.caption(drawn.caption)
    st.markdown(_("**Try this.** {exercise}").format(exercise=lesson.try_this))
    if st.toggle(_("Show the answer"), key=f"lesson_{lesson.slug}_answer"):
        st.success(lesson.answer, icon=":material/lightbulb:")
    titles = {page.file: page for page in PAGES}
    for link in lesson.links(values):
        st.page_link(link.page, label=f"{link.label}: {_(titles[link.page].title)}", icon=titles[link.page].icon,
                     query_params=link.params or None)
    index = lessons.index(lesson)
    back, forward = st.columns(2)
    if index > 0:
        back.button(f"← {lessons[index - 1].title}", key="lesson_back", on_click=_go_to_lesson,
                    args=(lessons[index - 1].slug,))
    if index + 1 < len(lessons):
        forward.button(f"{lessons[index + 1].title} →", key="lesson_next", on_click=_go_to_lesson,
                       args=(lessons[index + 1].slug,), type="primary")
