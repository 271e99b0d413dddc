"""Cache keys carry the prompt text and the parser/validator version: editing a prompt template (the plan the
per-row prompt is built from, or the instructions template) or bumping a parser/validator version gets fresh
answers, never the cached ones; the same request again is still answered from the cache."""

from __future__ import annotations

import dataclasses

from datatune_core.transformation import execute
from datatune_core.llm import LLMError, LLMRequest, get_client
from datatune_core.llm import parsing
from datatune_core.testing import ScriptedProvider
from datatune_core.transformation.plan import load_plan, save_plan
from datatune_core.transformation.pipeline import TransformOptions
from datatune_core.transformation.dry_run import dry_run

from .conftest import row_from_request
from .test_curation import run

SHOUT = "Write the output in capital letters."


def _provider() -> ScriptedProvider:
    def fn(req):
        if req.stage != "transform":
            raise LLMError("no strong model in this test")
        row = row_from_request(req)
        ans = row["answer"].upper() if SHOUT in (req.shared_prefix or "") else row["answer"]
        return {"input": row["question"] + "\nOptions:\n" + "\n".join(f"- {c}" for c in row["choices"]),
                "output": ans}

    return ScriptedProvider(fn)


def test_client_key_follows_prompt_and_versions(store, monkeypatch):
    prov = ScriptedProvider(lambda req: {"label": "positive"})
    client = get_client(store, provider=prov)
    req = lambda text, **meta: LLMRequest(messages=[{"role": "user", "content": text}], metadata=meta)  # noqa: E731
    client.complete(req("great film"))
    assert client.complete(req("great film")).from_cache and len(prov.calls) == 1
    assert not client.complete(req("great film!")).from_cache  # the prompt text is in the key
    assert not client.complete(req("great film", validator="v2")).from_cache  # the stage's validator version
    monkeypatch.setattr(parsing, "PARSER_VERSION", parsing.PARSER_VERSION + 1)
    assert not client.complete(req("great film")).from_cache  # the reply parser's version
    assert client.complete(req("great film")).from_cache and len(prov.calls) == 4


def test_editing_the_plan_template_gets_fresh_rows(store, project):
    prov = _provider()
    run(store, project, prov, path="llm", target_size=6, max_datasets=1)
    first = {r.source_row_id: r.output for r in store.list_rows(project, limit=100)}
    assert first and all(o == o.lower() for o in first.values())
    n = len(prov.calls)
    run(store, project, prov, path="llm", mode="retransform", max_datasets=1)
    assert len(prov.calls) == n  # nothing changed: nothing asked
    plan, _ = load_plan(store, project, "test/mc", "default")
    save_plan(store, project, dataclasses.replace(plan, steps=[*plan.steps, SHOUT], author="user"))  # the edit
    res = run(store, project, prov, path="llm", mode="retransform", max_datasets=1)
    fresh = {r.source_row_id: r.output for r in store.list_rows(project, limit=100)}
    assert res["transformed"] == len(first) and len(prov.calls) == n + len(first)  # asked again, every row
    assert fresh == {k: v.upper() for k, v in first.items()}  # and the rows show the new answers


def test_instructions_template_and_parser_version_bust_the_dry_run_cache(store, project, monkeypatch):
    prov = _provider()
    client = get_client(store, project_id=project, provider=prov)
    opts = TransformOptions(path="llm")
    dry_run(store, project, "test/mc", "default", k=3, client=client, options=opts)
    n = len(prov.calls)
    dry_run(store, project, "test/mc", "default", k=3, client=client, options=opts)
    assert len(prov.calls) == n  # the same prompts: all from the cache
    monkeypatch.setattr(execute, "EXEC_INSTRUCTIONS", execute.EXEC_INSTRUCTIONS + " " + SHOUT)
    res = dry_run(store, project, "test/mc", "default", k=3, client=client, options=opts)
    assert len(prov.calls) == n + 3 and all(s.output == s.output.upper() for s in res.samples)
    monkeypatch.setattr(execute, "ROW_PARSER_VERSION", execute.ROW_PARSER_VERSION + 1)
    dry_run(store, project, "test/mc", "default", k=3, client=client, options=opts)
    assert len(prov.calls) == n + 6  # a new per-row parser/validator version: fresh answers
