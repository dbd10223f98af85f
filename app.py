"""attnviz, the app (`streamlit run app.py`), and its landing page: what attnviz is, where to go, which models exist,
which device trains them. The other pages are the files in pages/ (Streamlit's pages folder), listed in
attnviz.app.ui.PAGES."""
import streamlit as st

from attnviz.app import markdown, ui
from attnviz.app.tables import models_table
from attnviz.i18n import _
from attnviz.training.device import describe, pick_device

ui.sidebar(__file__)
st.title("attnviz")
st.markdown("#### " + _("See inside attention: train small Transformers and watch every head at work."))

st.markdown(_(r"""
In a Transformer every token asks every other token *"how much of you do I need?"*. One attention
**head** turns each token into a query $q$, a key $k$ and a value $v$, scores each query against all keys,
turns the scores into weights that sum to 1, and mixes the values with those weights:

$$\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{d_k}}\right) V$$

Those weights are what this app shows. The models here are small enough to train in seconds on a laptop,
on tasks whose answer you know, such as reversing a string or rewriting *"23 Nov 2026"* as *2026-11-23*,
so you can check what each head learned rather than guess. Everything runs on this machine.
"""))

other_pages = [page for page in ui.available_pages() if page.file != ui.HOME]
if other_pages:
    st.subheader(_("Where to go"))
for page in other_pages:
    st.page_link(page.file, label=f"**{_(page.title)}**: {_(page.blurb)}", icon=page.icon)

st.subheader(_("Models"))
infos = ui.checkpoints()
if infos:
    st.caption(_("Pick one in the sidebar; every page uses it. *Shipped* models come with attnviz; "
                 "*yours* are the ones you trained here, in this browser; the others say who trained them."))
    st.dataframe(models_table(infos, ui.browser_owner()), hide_index=True, key="models")
else:
    st.info(_("No trained model yet. Train one on **Train live**, or from a terminal: "
              "`python -m attnviz train --help`."))
for path, problem in infos.problems:
    st.warning(markdown.escape(_("Skipped {folder}: {problem}").format(folder=path.name, problem=problem)))

st.subheader(_("Device"))
device = pick_device("auto")
st.markdown(_("Training here runs on **{device}**.").format(device=describe(device)))
if device.type == "cpu":
    st.caption(_("attnviz takes an NVIDIA GPU (CUDA, with bf16) or an Apple-silicon GPU (MPS) when there is one. "
                 "The models are small: a CPU trains most tasks in well under a minute."))
