"""The app's Streamlit layer, the only part of attnviz that imports streamlit. Pages call `ui.<name>` instead of
repeating these pieces, so the model chosen in the sidebar is the same on every page, choices survive a reload and
travel with a link (they are kept in the URL), and every figure is drawn the same way.

    page_table  the pages, their titles and icons          sidebar    what every page starts with
    models      checkpoints, the picker, cached loading     widgets    choices and inputs kept in the URL
    charts      the toolbar, presenter mode, downloads      attention  model, input and head pickers of the pages
    decoding    the decoding page's controls                lessons    a lesson of the course
"""
from attnviz.app.ui.attention import (KIND_LABELS, attention_kind, head_grid, head_view_chart, input_notes_or_stop,
                                      input_run, input_text, layer_and_head, model_or_stop, show_tokens, task_or_stop)
from attnviz.app.ui.charts import chart_rows, plotly_chart, shared_figures
from attnviz.app.ui.decoding import decoding_controls
from attnviz.app.ui.lessons import lesson_picker, show_lesson
from attnviz.app.ui.models import (browser_owner, checkpoints, default_model, load_model, minilm, model_key,
                                   model_picker, selected_model, training_registry)
from attnviz.app.ui.page_table import APP_ICON, HOME, PAGES, available_pages
from attnviz.app.ui.sidebar import in_session_language, sidebar
from attnviz.app.ui.widgets import (choice, linked_slider, linked_state, linked_text, message, newest_slider,
                                    number_inputs, table_or_caption)

__all__ = ["APP_ICON", "HOME", "KIND_LABELS", "PAGES", "attention_kind", "available_pages", "browser_owner",
           "chart_rows", "checkpoints", "choice", "decoding_controls", "default_model", "head_grid",
           "head_view_chart", "in_session_language", "input_notes_or_stop", "input_run", "input_text",
           "layer_and_head", "lesson_picker", "linked_slider", "linked_state", "linked_text", "load_model", "message",
           "minilm", "model_key", "model_or_stop", "model_picker", "newest_slider", "number_inputs", "plotly_chart",
           "selected_model", "shared_figures", "show_lesson", "show_tokens", "sidebar", "table_or_caption",
           "task_or_stop", "training_registry"]
