"""The course: the seed's story from sequences and the RNN's limits to the Transformer, one lesson at a time
(?lesson=slug), each with a live figure, a "try this" and links to the full pages at the lesson's state."""
import streamlit as st

from attnviz.app import ui
from attnviz.app.course import LESSONS
from attnviz.i18n import _

ui.sidebar(__file__)
lessons = [lesson.translated() for lesson in LESSONS]
st.title(_("Course"))
st.caption(_("{count} short lessons in order, from recurrent networks to attention. Each figure is live: change the "
             "inputs under the text. The link under a lesson opens the full page at the lesson's state.")
           .format(count=len(lessons)))
lesson = ui.lesson_picker(lessons)
ui.show_lesson(lesson, lessons)
