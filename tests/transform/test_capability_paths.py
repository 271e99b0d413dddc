"""The transform and synth stages follow the provider's capabilities: a weak model gets the offline path (the
embedded model used to get it by name), a model's output limit caps every request it is sent, and a provider
that takes no temperature gets no ramp and no recorded temperature."""

from __future__ import annotations

from datatune_core.jobs import JobContext
from datatune_core.llm import Capabilities, LLMError
from datatune_core.synth.generate import SynthOptions, run_synth_job
from datatune_core.testing import ScriptedProvider
from datatune_core.transformation.pipeline import TransformOptions

from .conftest import TOPICS
from .test_transform import correct, responder, run


def test_a_weak_provider_gets_the_heuristic_template_without_llm_calls(store, project):
    prov = ScriptedProvider(responder(correct), capabilities=Capabilities(strong_reasoning=False))
    res, _ = run(store, project, TransformOptions(target_size=30, check_size=5), prov)
    ds = res["datasets"][0]
    assert ds["path"] == "template" and "no capable LLM to cross-check" in ds["reason"]
    assert [c.stage for c in prov.calls] == []  # no expansion, schema, plan or check calls either
    assert res["kept"] == 30


def test_per_row_requests_ask_for_at_most_the_output_limit(store, project):
    prov = ScriptedProvider(responder(correct), capabilities=Capabilities(max_output_tokens=300))
    run(store, project, TransformOptions(target_size=20, check_size=4), prov)
    rows = [c for c in prov.calls if c.stage == "transform"]
    assert rows and {c.max_tokens for c in rows} == {300}  # 768 wanted, 300 is what the model returns


def synth_run(store, project, caps: Capabilities | None, **opts):
    def fn(req):
        if req.stage != "synth":
            raise LLMError("no strong model in this test")  # expansion falls back to the heuristic
        i = req.metadata["seed"]
        n = int(req.messages[0]["content"].rsplit("Write ", 1)[1].split()[0])
        return {"examples": [{"input": f"Which animal of list {i}-{j} lives in the {TOPICS[(i + j) % 20]} area?",
                              "output": TOPICS[(i + j) % 20]} for j in range(n)]}

    from datatune_core.llm import get_client

    prov = ScriptedProvider(fn, capabilities=caps)
    job = store.create_job("synth", SynthOptions(**opts).to_dict(), project_id=project)
    res = run_synth_job(JobContext(store=store, job=store.get_job(job)), client=get_client(provider=prov))
    logs = [e["message"] for e in store.job_logs(job)]
    return res, [c for c in prov.calls if c.stage == "synth"], logs


def test_synth_asks_for_fewer_examples_per_call_when_the_model_returns_less(store, project):
    res, calls, logs = synth_run(store, project, Capabilities(max_output_tokens=450), n_rows=6, per_call=4,
                                 calls_per_unit=3)
    assert res["kept"] == 6
    assert {c.max_tokens for c in calls} == {400} and all("Write 1 new examples" in c.messages[0]["content"]
                                                          for c in calls)
    assert any("1 example(s) per call instead of 4" in m for m in logs)
    _, calls, logs = synth_run(store, project, None, n_rows=8, per_call=4, calls_per_unit=2, run_id="free")
    assert {c.max_tokens for c in calls} == {1600} and not any("per call instead" in m for m in logs)


def test_synth_without_temperature_records_none_and_says_so(store, project):
    _, calls, logs = synth_run(store, project, Capabilities(temperature=False), n_rows=4, per_call=2,
                               calls_per_unit=2)
    rows = [r for r in store.list_rows(project, limit=100) if r.source == "synthetic"]
    assert rows and all(r.source_json["temperature"] is None for r in rows)
    assert any("takes no sampling temperature" in m for m in logs)
    _, calls, logs = synth_run(store, project, Capabilities(max_temperature=1.0), n_rows=4, per_call=2,
                               calls_per_unit=2, temp_start=0.5, temp_end=1.7, run_id="hot")
    temps = {r.source_json["temperature"] for r in store.list_rows(project, limit=100)
             if r.source == "synthetic" and r.run_id == "hot"}
    assert temps and max(temps) <= 1.0 and min(temps) == 0.5  # what the provider was sent, clamped to its range
    assert not any("takes no sampling temperature" in m for m in logs)
