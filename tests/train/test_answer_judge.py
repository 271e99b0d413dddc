"""The LLM answer judge for free-text test sets: through the real anthropic SDK against the scripted Messages-API
server (a malformed reply counted, not guessed), used only with a capable provider, never for BIG-bench rows."""

from __future__ import annotations

import json

import pytest

from datatune_core.evaluation import testset
from datatune_core.evaluation.answerjudge import ANSWER_RUBRIC, capable, judge_answers
from datatune_core.llm import get_client
from datatune_core.testing import ScriptedProvider
from datatune_core.evaluation.project import evaluate_project
from tests.fakes.messages_server import MessagesServer


def _text(req: dict) -> str:
    return " ".join(b.get("text", "") if isinstance(b, dict) else str(b)
                    for m in req["messages"] for b in (m["content"] if isinstance(m["content"], list)
                                                       else [m["content"]]))


def server_reply(req: dict) -> str:
    t = _text(req)
    if "Input:\nWho wrote Hamlet?" in t:
        return "5"
    if "Input:\nCapital of France?" in t:
        return "Rating: 2/5"
    if "Input:\nBoiling point of water?" in t:
        return "The answer looks reasonable to me."  # malformed: no rating, also after the re-ask
    return "Rating: 7"  # out of range


def anthropic_client(srv):
    from datatune_core.llm.anthropic_provider import AnthropicProvider

    return get_client(provider=AnthropicProvider(api_key=srv.api_key, base_url=srv.url, timeout_s=10))


def test_judge_through_the_anthropic_sdk_with_a_malformed_reply():
    inputs = ["Who wrote Hamlet?", "Capital of France?", "Boiling point of water?", "Largest planet?"]
    refs = ["William Shakespeare", "Paris", "100 degrees Celsius", "Jupiter"]
    answers = ["Shakespeare wrote it", "Lyon", "hot", "Saturn"]
    with MessagesServer(responder=server_reply) as srv:
        j = judge_answers(inputs, refs, answers, anthropic_client(srv), task="Answer trivia questions.")
        log = srv.billed()
        assert len(log) == 5  # 4 ratings + 1 re-ask of the reply that held no rating
    assert (j["n"], j["n_valid"], j["n_malformed"], j["n_out_of_range"], j["n_failed"]) == (4, 2, 1, 1, 0)
    assert j["ratings"] == [5.0, 2.0, None, None]
    assert j["mean_rating"] == 3.5 and j["score"] == pytest.approx(62.5)  # ((5-1)/4 + (2-1)/4) / 2 * 100
    assert j["model"].startswith("anthropic")


def test_judge_prompt_carries_rubric_reference_and_answer():
    prov = ScriptedProvider(lambda req: "4")
    j = judge_answers(["2+2?"], ["4"], [""], get_client(provider=prov), task="Do sums.")
    req = prov.calls[0]
    assert req.shared_prefix.startswith(ANSWER_RUBRIC) and "Do sums." in req.shared_prefix
    body = req.messages[-1]["content"]
    assert "Reference answer:\n4" in body and "Model answer:\n(empty)" in body
    assert req.max_tokens <= 8 and req.temperature == 0.0 and req.stage == "evaluate"
    assert j["score"] == 75.0


def test_no_valid_rating_explains():
    j = judge_answers(["q"], ["a"], ["b"], get_client(provider=ScriptedProvider(lambda r: "no idea")))
    assert j["score"] is None and j["n_malformed"] == 1 and "no valid rating" in j["note"]


def test_capable_provider_only():
    from datatune_core.llm.capabilities import Capabilities

    assert not capable(None)
    assert capable(get_client(provider=ScriptedProvider(lambda r: "3")))
    # the capability decides, not the name: a weak provider (like the embedded model) is not asked
    weak = ScriptedProvider(lambda r: "3", capabilities=Capabilities(strong_reasoning=False))
    assert not capable(get_client(provider=weak))


def free_text_project(store, tmp_path) -> int:
    pid = store.create_project("trivia", "Answer the trivia question in a few words.",
                               examples=[{"input": "Color of the sky?", "output": "blue"}])
    f = tmp_path / "test.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in [{"input": "Who wrote Hamlet?", "output": "William Shakespeare"},
                                                   {"input": "Capital of France?", "output": "Paris"},
                                                   {"input": "Boiling point of water?", "output": "100 degrees"}]))
    testset.from_upload(store, pid, f)
    return pid


def test_project_eval_adds_the_judge_for_free_text(tiny_model, store, tmp_path):
    pid = free_text_project(store, tmp_path)
    with MessagesServer(responder=server_reply) as srv:
        (base,) = evaluate_project(store, pid, str(tiny_model), judge=anthropic_client(srv))
    assert base.format == "generative" and "chrf" in base.metrics
    j = base.metrics["judge"]
    assert (j["n"], j["n_valid"], j["n_malformed"]) == (3, 2, 1) and j["score"] == pytest.approx(62.5)
    (plain,) = evaluate_project(store, pid, str(tiny_model))  # no provider given: no judge
    assert "judge" not in plain.metrics
    local = type("C", (), {"provider": type("P", (), {"name": "local"})()})()
    (weak,) = evaluate_project(store, pid, str(tiny_model), judge=local)
    assert "judge" not in weak.metrics
