"""`datatune retrieve`: rank catalog datasets for a task (one query as a table, or a batch JSONL file)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from datatune_core.cli.commands._common import open_store, print_json, print_table, resolve_project


def _read_queries(path: Path) -> list[dict]:
    from datatune_core.errors import UserError

    if not path.is_file():
        raise UserError(f"Queries file {path} does not exist.")
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}, line {n}: not valid JSON ({e.msg}). Each line must be "
                            '{"qid": ..., "query": "..."}.') from e
        if not isinstance(d, dict) or "query" not in d or "qid" not in d:
            raise UserError(f'{path}, line {n}: needs the keys "qid" and "query".')
        out.append(d)
    return out


def register(app: typer.Typer) -> None:
    @app.command("retrieve")
    def retrieve(text: str = typer.Argument(None, help="The task description to search for."),
                 catalog: list[Path] = typer.Option(None, "--catalog", help="Catalog .jsonl/.jsonl.gz (repeatable); "
                                                    "default: bundled + shared + your catalogs."),
                 top_k: int = typer.Option(10, "--top-k", help="How many datasets to return."),
                 no_rerank: bool = typer.Option(False, "--no-rerank", help="Skip the LLM rerank."),
                 eval_task: str = typer.Option(None, "--eval-task", help="BIG-bench unit to guard against leakage."),
                 project: str = typer.Option(None, "--project", help="Use (and save candidates to) this project."),
                 queries: Path = typer.Option(None, "--queries", help='Batch mode: JSONL of {"qid", "query"} '
                                              '(optional "examples": [{"input", "output"}], "eval_task").'),
                 output: Path = typer.Option(None, "--output", help='Batch mode: write {"qid", "ranked"} JSONL.'),
                 votes: int = typer.Option(5, help="Rerank self-consistency votes."),
                 rerank_n: int = typer.Option(25, "--rerank-n", help="How many top results the LLM reranks."),
                 mode: str = typer.Option("hybrid", help="hybrid (learned fusion of every signal) | rrf (the same "
                                          "signals, weighted reciprocal-rank fusion) | bm25 | dense."),
                 as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
                 background: bool = typer.Option(False, "--background", help="With --project: run the search as a "
                                                 "background job (kind search) and print its id.")):
        """Rank datasets for a task: hybrid search (+ LLM rerank) with the leakage guard."""
        from datatune_core.errors import UserError
        from datatune_core.retrieval.search import save_candidates, search
        from datatune_core.retrieval.index import load_index

        from datatune_core.retrieval.search import MODES

        if mode not in MODES:
            raise UserError("--mode must be hybrid, rrf, bm25 or dense.")
        paths = list(catalog) if catalog else None
        if background:
            from datatune_core.retrieval.search import start_search

            if not project or queries is not None or mode != "hybrid":
                raise UserError("--background searches for a project: give --project P (and optionally the search "
                                "text, --catalog, --top-k, --no-rerank) without --queries/--mode.")
            store = open_store()
            proj = resolve_project(store, project)
            job_id = start_search(store, proj.id, text, top_k=top_k, rerank=not no_rerank, catalogs=paths)
            typer.echo(f"search job {job_id} started; follow it with `datatune jobs show {job_id}`")
            return
        if queries is not None:
            if output is None:
                raise UserError("Batch mode needs --output R.jsonl next to --queries Q.jsonl.")
            qs = _read_queries(queries)
            idx = load_index(paths)
            output.parent.mkdir(parents=True, exist_ok=True)
            with open(output, "w", encoding="utf-8") as fh:
                for q in qs:
                    target = ({"instruction": str(q["query"]), "examples": q["examples"]}
                              if isinstance(q.get("examples"), list) else str(q["query"]))
                    res = search(target, top_k=top_k, rerank=not no_rerank, eval_task=q.get("eval_task")
                                 or eval_task, rerank_n=rerank_n, votes=votes, mode=mode, index=idx)
                    fh.write(json.dumps({"qid": q["qid"], "ranked": res.ids()}, ensure_ascii=False) + "\n")
            typer.echo(f"Wrote {len(qs)} rankings to {output}.", err=True)
            return
        store = proj = None
        query = text
        client = None
        if project:
            from datatune_core.spec import spec_from_project

            store = open_store()
            proj = resolve_project(store, project)
            spec = spec_from_project(proj)
            query = text or spec
            eval_task = eval_task or proj.eval_task
            if not no_rerank:
                from datatune_core.llm import get_client

                client = get_client(store, project_id=proj.id, stage="retrieve")
        if query is None:
            raise UserError('Give a task description, e.g. `datatune retrieve "classify tweets as sarcastic"`, '
                            "or --project P, or --queries Q.jsonl --output R.jsonl.")
        res = search(query, catalogs=paths, top_k=top_k, rerank=not no_rerank, client=client, eval_task=eval_task,
                     rerank_n=rerank_n, votes=votes, mode=mode)
        if store is not None and proj is not None:
            n = save_candidates(store, proj.id, res)
            typer.echo(f"Saved {n} candidates to project {proj.name!r}.", err=True)
        if as_json:
            print_json({"query": res.query, "candidates": [c.to_dict() for c in res.candidates],
                        "excluded": [c.to_dict() for c in res.excluded], "none_fits": res.none_fits,
                        "votes": res.votes, "none_votes": res.none_votes, "notes": res.notes})
            return
        rows = [{"rank": i, **c.to_dict()} for i, c in enumerate(res.candidates, 1)]
        cols = ["rank", "dataset_id", "config", "fused_score", "bm25_score", "dense_score"]
        if res.reranked:
            cols += ["rerank_votes", "reason"]
        else:  # no LLM: the search explains itself
            for r, c in zip(rows, res.candidates):
                r["why"] = ((c.explanation or {}).get("summary") or "")[:160]
            cols += ["why"]
        print_table(rows, cols)
        if res.none_fits:
            typer.secho(f"The reranker says none of these fits ({res.none_votes} of "
                        f"{res.votes + res.none_votes} votes).", fg=typer.colors.YELLOW)
        if res.excluded:
            typer.echo(f"\nExcluded by the leakage guard ({len(res.excluded)}):")
            for c in res.excluded[:30]:
                typer.echo(f"  {c.record.id}: {c.excluded_reason}")
        for n in res.notes:
            typer.secho(f"note: {n}", fg=typer.colors.YELLOW, err=True)
