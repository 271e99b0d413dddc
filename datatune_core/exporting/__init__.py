"""Exporting: what leaves the Studio — dataset and adapter folders with cards, merged models, GGUF, recipes.

In: a project's curated dataset (`transformation.mix`), an adapter (`training`), quality charts (`quality`).
Out: a Hugging Face dataset folder + card, the adapter + model card, a merged HF model or one GGUF file + Ollama
Modelfile, a recipe that rebuilds the project (`recipe` replays every stage), a whole-project export that
imports elsewhere, and side-by-side chat with the model.
Modules: `artifacts` (dataset/adapter folders, `export_all`), `model` (merge, GGUF), `gguf` (the GGUF writer),
`recipe` (build/save/replay), `portable` (a whole project as JSON + parquet, for sharing), `chat` (base vs tuned answers, streamed).
"""
