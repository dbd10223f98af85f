"""The app's own code: `ui` (the only module that imports streamlit), plotly figures, tables, page text and the
Train live page's view. Pages import from here and from the library below."""
