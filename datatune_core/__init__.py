"""DataTune Studio's engine: retrieve datasets, transform their rows with an LLM, train and evaluate.

Never imports streamlit; the app (`app.py`, `app_pages/`) and the CLI (`datatune`) are thin front ends over it.
The packages are the pipeline (docs/architecture.md, "Packages"): `catalog` -> `retrieval` -> `transformation`
(+ `synth`) -> `quality` -> `training` -> `evaluation` -> `exporting`, over `store`, `jobs`, `llm` and `leakage`.

The public API (`api.py`), offline end to end (no LLM: the compiled-template path; a local model folder):

    import datatune_core as dt

    p = dt.Project.create("colors", "Name the color of the thing.",
                          [{"input": "What color is the sky?", "output": "blue"}])
    p.add_dataset(csv_path, name="colors")          # or: dt.search(p, accept=2) over the catalogs
    kept = dt.transform(p, use_llm=False, target_size=50)
    adapter = dt.train(p, model=model_dir, max_steps=4)
    results = dt.evaluate(p, adapter, limit=3)      # the project's own test set; or units=["<bigbench unit>"]
    paths = dt.export(p, out_dir, adapter=adapter)  # {"dataset": ..., "recipe": ..., "adapter": ...}
"""

from datatune_core.api import Project, evaluate, export, search, train, transform

__version__ = "0.1.0"
__all__ = ["Project", "evaluate", "export", "search", "train", "transform"]
