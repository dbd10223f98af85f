"""The course: the seed's story from sequences and the RNN's limits to the Transformer, one lesson at a time
(?lesson=slug), each with a live figure, a "try this" and links to the full pages at the lesson's state."""
import streamlit as st

from attnviz.app import ui
from attnviz.app.course import LESSONS

ui.sidebar(__file__)
st.title("Course")
st.caption(f"{len(LESSONS)} short lessons in order, from recurrent networks to attention. Each figure is live: "
           "change the inputs under the text. The link under a lesson opens the full page at the lesson's state.")
lesson = ui.lesson_picker(LESSONS)
ui.show_lesson(lesson, LESSONS)
