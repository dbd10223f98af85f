"""attnviz, the app: `streamlit run app.py`. The pages live in pages/ and are listed in attnviz.ui.PAGES."""
import streamlit as st

from attnviz.app import ui
from attnviz.training.device import set_threads_once

st.set_page_config(page_icon=":material/visibility:", layout="wide")
set_threads_once()  # process-wide: cores - 1, so the server keeps a core for the browser sessions

page = ui.navigation()
ui.device_badge()
ui.model_picker()
page.run()
