"""The job kinds the Studio's pages start and watch. The job bodies live in the engine (`datatune_core`), so a
worker never imports this package nor streamlit, and the CLI can start the same jobs.

- `SEARCH_KIND` ("search"): `datatune_core.retrieval.search.run_search_job` - search + rerank + leakage guard, the
  candidates saved to the store (`datatune retrieve --project P --background`).
- `DRY_KIND` ("dry_run"): `datatune_core.transformation.dry_run.run_dry_run_job` - a dry run of one source, kept as an
  artifact (`datatune transform dry-run P DATASET --background`).
- `SYNTH_KIND` ("synth"), `QUALITY_KIND` ("quality"): synthetic rows and the quality profile.
"""

from __future__ import annotations

SEARCH_KIND = "search"
DRY_KIND = "dry_run"
SYNTH_KIND = "synth"
QUALITY_KIND = "quality"
