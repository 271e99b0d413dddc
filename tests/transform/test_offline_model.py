"""Offline end to end with the real embedded model (SmolLM2-135M): the per-row LLM path runs without a key."""

from __future__ import annotations

import pytest

from datatune_core.llm import get_client
from datatune_core.transformation.pipeline import TransformOptions
from datatune_core.transformation.dry_run import dry_run
from datatune_core.transformation.validate import REASON_CODES


@pytest.mark.slow
def test_dry_run_per_row_with_embedded_model(store, project, monkeypatch):
    import torch

    torch.set_num_threads(2)
    monkeypatch.setenv("DATATUNE_LOCAL_MAX_NEW_TOKENS", "64")  # a short reply keeps this test around a minute
    client = get_client(store, project_id=project, stage="transform")
    assert client.provider.name == "local"  # no key in tests: the embedded model
    res = dry_run(store, project, "test/qa", None, k=1, client=client, options=TransformOptions(path="llm"))
    assert res.decision.path == "llm" and len(res.samples) == 1
    for s in res.samples:  # quality is limited: each row is either kept or rejected with a known reason code
        assert s.path == "llm"
        assert s.status == "kept" or s.reason.split(":")[0] in REASON_CODES
    calls = store.query("SELECT provider, status FROM llm_calls WHERE project_id=? AND stage='transform'", (project,))
    assert len(calls) == 1 and {c[0] for c in calls} == {"local"}
