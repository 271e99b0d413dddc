"""The library's public functions: a task in, a fine-tuned and exported model out (see `datatune_core`'s docstring).

Each function is a thin front over the stage that the app page and the `datatune` command run: the same jobs, the
same store, the same checks. Heavy stages are imported inside the functions, so `import datatune_core` stays light.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datatune_core.errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    from datatune_core.store import Store


@dataclass
class Project:
    """One project of the workspace: its task (instruction + examples), datasets, rows, models."""

    store: "Store"
    id: int

    @classmethod
    def create(cls, name: str, instruction: str, examples: list[dict] | None = None, *, eval_task: str | None = None,
               home: str | Path | None = None, store: "Store | None" = None) -> "Project":
        """A new project in the workspace at `home` (default: DATATUNE_HOME)."""
        from datatune_core.store import Store

        st = store or Store.open(home)
        return cls(st, st.create_project(name, instruction, examples or [], eval_task=eval_task))

    @classmethod
    def open(cls, project: int | str, *, home: str | Path | None = None, store: "Store | None" = None) -> "Project":
        """An existing project, by id or name."""
        from datatune_core.store import Store

        st = store or Store.open(home)
        if isinstance(project, int) or str(project).isdigit():
            return cls(st, st.get_project(int(project)).id)
        p = st.find_project(str(project))
        if p is None:
            raise UserError(f"No project named {project!r}; `datatune projects list` shows the projects.")
        return cls(st, p.id)

    @property
    def name(self) -> str:
        return self.store.get_project(self.id).name

    def add_dataset(self, path: str | Path, *, name: str | None = None, description: str | None = None) -> str:
        """Register a local data file and accept it as a source of this project; returns its dataset id."""
        from datatune_core.catalog.records import add_local_dataset

        rec = add_local_dataset(self.store.home, path, name=name, description=description)
        self.store.upsert_candidate(self.id, rec.id, record=rec.to_dict(), config=rec.configs[0].name,
                                    decision="accepted")
        return rec.id

    def rows(self) -> list[dict]:
        """The curated rows (kept + edited, after the project's mix): what trains and ships."""
        from datatune_core.transformation.mix import curated_rows

        return [{"input": r.input, "output": r.output} for r in curated_rows(self.store, self.id)]


def _finished(store: "Store", job_id: int, what: str) -> Any:
    job = store.get_job(job_id)
    if job.status != "done":
        raise UserError(f"The {what} job {job_id} ended {job.status}: {job.error or job.message or 'no details'}.")
    return job


def search(project: Project, *, top_k: int = 10, accept: int = 0, catalogs: list[str | Path] | None = None,
           **options: Any) -> Any:
    """Rank catalog datasets for the project's task (saved as its candidates); accept the `accept` best ones.

    Options are those of `retrieval.search.search` (rerank, client, mode, ...). Returns the `RetrievalResult`."""
    from datatune_core.retrieval.search import save_candidates
    from datatune_core.retrieval.search import search as rank
    from datatune_core.spec import spec_from_project

    result = rank(spec_from_project(project.store.get_project(project.id)), catalogs=catalogs, top_k=top_k, **options)
    save_candidates(project.store, project.id, result)
    for c in result.candidates[:accept]:
        project.store.upsert_candidate(project.id, c.record.id, decision="accepted", config=c.config)
    return result


def transform(project: Project, **options: Any) -> int:
    """Transform the accepted datasets' rows into task rows (options: `TransformOptions` fields, e.g.
    `use_llm=False`, `target_size=200`). Runs the "transform" job to the end; returns the number of kept rows."""
    from datatune_core.transformation.pipeline import TransformOptions
    from datatune_core.transformation.run import start_transform

    job_id = start_transform(project.store, project.id, TransformOptions(**options), background=False)
    _finished(project.store, job_id, "transform")
    return project.store.count_rows(project.id, status=["kept", "edited"])


def train(project: Project, *, preset: str = "cpu-demo", timeout_s: float = 7 * 24 * 3600, **overrides: Any) -> Path:
    """LoRA fine-tuning on the curated rows (`LoraTrainConfig` preset + overrides, e.g. `model=...`,
    `max_steps=...`), as the "train" job in its own process; returns the adapter folder."""
    from datatune_core import jobs
    from datatune_core.training.config import LoraTrainConfig
    from datatune_core.training.launch import start_training

    cfg = LoraTrainConfig.from_preset(preset, **overrides)
    job = jobs.wait_job(project.store, start_training(project.store, project.id, cfg), timeout_s=timeout_s)
    job = _finished(project.store, job.id, "training")
    return Path(job.result["adapter"])


def evaluate(project: Project, adapter: str | Path | None = None, *, units: list[str] | None = None,
             limit: int | None = None, model: str | None = None, compare: bool = True) -> list[dict]:
    """Score the base model and the adapter on BIG-bench `units` or, without units, on the project's own test
    set; returns one result per (variant, task), as the "evaluate" job stores them."""
    from datatune_core import jobs

    cfg = {k: v for k, v in {"units": units, "adapter": str(adapter) if adapter else None, "limit": limit,
                             "model": model, "compare": compare}.items() if v is not None}
    if not units:
        cfg["project_test"] = True
    job_id = jobs.start_job(project.store, "evaluate", cfg, project_id=project.id, background=False)
    return list((_finished(project.store, job_id, "evaluation").result or {}).get("results") or [])


def export(project: Project, root: str | Path, *, adapter: str | Path | None = None) -> dict[str, Path]:
    """Write the dataset folder + card, the recipe and (with an adapter, or the latest one) the adapter + model
    card under `root`; returns their paths by kind."""
    from datatune_core.exporting.artifacts import export_all

    return {k: Path(v) for k, v in export_all(project.store, project.id, adapter=str(adapter) if adapter else None,
                                              root=root).items()}
