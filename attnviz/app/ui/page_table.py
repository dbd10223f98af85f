"""The page table: every page of the app in menu order, with its title, icon and one line for the landing page."""
from pathlib import Path
from typing import NamedTuple

from attnviz.i18n import N_


ROOT = Path(__file__).resolve().parents[3]


class PageInfo(NamedTuple):
    file: str  # relative to the repository root, like app.py
    title: str
    icon: str  # an emoji: it ships with the browser (a :material/...: page icon is fetched from Google's servers)
    blurb: str  # one line for the landing page

    @property
    def url_path(self):
        """Where Streamlit serves the page: "" (the root) for app.py, "explorer" for pages/explorer.py."""
        return "" if self.file == HOME else Path(self.file).stem


HOME = "app.py"

APP_ICON = ROOT / "attnviz" / "app" / "icon.svg"  # the tab's icon ships with the app: Streamlit serves it itself

SIDEBAR_PX = 340  # wide enough for the longest model name in the picker ("reverse-long-lstm-bahdanau (reverse)")

PAGES = [
    PageInfo(HOME, N_("Home"), "🏠", N_("What attnviz is, the models at hand and the device.")),
    PageInfo("pages/course.py", N_("Course"), "🧭",
             N_("The story from sequences and the RNN's limits to the Transformer, one short lesson and live figure "
                "at a time.")),
    PageInfo("pages/explorer.py", N_("Attention explorer"), "🔍",
             N_("Every layer and head as a heatmap; head statistics, rollout, and switching heads off.")),
    PageInfo("pages/positional.py", N_("Positional encodings"), "🌊",
             N_("The sinusoidal table, how positions resemble each other, and what a model loses without them.")),
    PageInfo("pages/mechanics.py", N_("Attention mechanics"), "🧮",
             N_("One head by hand with real numbers: Q, K, V, QKᵀ/√d, the mask, softmax, times V.")),
    PageInfo("pages/decoding.py", N_("Step-by-step decoding"), "⏭️",
             N_("Greedy, beam search and sampling one token at a time, with the attention behind each choice.")),
    PageInfo("pages/train.py", N_("Train live"), "🏋️",
             N_("Train a small model and watch its loss fall and its attention pattern form.")),
    PageInfo("pages/rnn_vs_attention.py", N_("RNN vs attention"), "⚖️",
             N_("An LSTM with and without attention against a Transformer, on the same task.")),
    PageInfo("pages/pretrained.py", N_("Pretrained (MiniLM)"), "🎓",
             N_("A real pretrained model (MiniLM-L6) running in our own encoder: its heads on your sentence.")),
]


def available_pages():
    return [page for page in PAGES if (ROOT / page.file).exists()]


def page_of(script_path):
    """The `PageInfo` of a page file (the page's `__file__`)."""
    relative = Path(script_path).resolve().relative_to(ROOT).as_posix()
    for page in PAGES:
        if page.file == relative:
            return page
    raise ValueError(f"{relative} is not in attnviz.app.ui.page_table.PAGES: give it a line there (title, icon, "
                     "blurb)")
