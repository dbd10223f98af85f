"""attnviz, the app (`streamlit run app.py`), and its landing page: what attnviz is, where to go, which models exist,
which device trains them. The other pages are the files in pages/ (Streamlit's pages folder), listed in
attnviz.app.ui.PAGES."""
import streamlit as st

from attnviz.app import markdown, ui
from attnviz.app.tables import models_table
from attnviz.training.device import describe, pick_device

ui.sidebar(__file__)
st.title("attnviz")
st.markdown("#### See inside attention: train small Transformers and watch every head at work.")

st.markdown(r"""
In a Transformer every token asks every other token *"how much of you do I need?"*. One attention
**head** turns each token into a query $q$, a key $k$ and a value $v$, scores each query against all keys,
turns the scores into weights that sum to 1, and mixes the values with those weights:

$$\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{d_k}}\right) V$$

Those weights are what this app shows. The models here are small enough to train in seconds on a laptop,
on tasks whose answer you know, such as reversing a string or rewriting *"23 Nov 2026"* as *2026-11-23*,
so you can check what each head learned rather than guess. Everything runs on this machine.
""")

other_pages = [page for page in ui.available_pages() if page.file != ui.HOME]
if other_pages:
    st.subheader("Where to go")
for page in other_pages:
    st.page_link(page.file, label=f"**{page.title}**: {page.blurb}", icon=page.icon)

st.subheader("Models")
infos = ui.checkpoints()
if infos:
    st.caption("Pick one in the sidebar; every page uses it. *Shipped* models come with attnviz; "
               "*yours* are the ones trained here.")
    st.dataframe(models_table(infos), hide_index=True, key="models")
else:
    st.info("No trained model yet. Train one on **Train live**, or from a terminal: "
            "`python -m attnviz train --help`.")
for path, problem in infos.problems:
    st.warning(markdown.escape(f"Skipped {path.name}: {problem}"))

st.subheader("Device")
device = pick_device("auto")
st.markdown(f"Training here runs on **{describe(device)}**.")
if device.type == "cpu":
    st.caption("attnviz takes an NVIDIA GPU (CUDA, with bf16) or an Apple-silicon GPU (MPS) when there is one. "
               "The models are small: a CPU trains most tasks in well under a minute.")
