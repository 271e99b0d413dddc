"""DataTune Studio's engine: retrieve datasets, transform their rows with an LLM, train and evaluate.

Never imports streamlit; the app (`app.py`, `pages/`) and the CLI (`datatune`) are thin front ends over it.
"""

__version__ = "0.1.0"
