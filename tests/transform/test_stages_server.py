"""Stage proposals through the real anthropic SDK against the scripted Messages-API server: valid,
malformed, hallucinated columns and an empty plan, each handled with a clear fallback."""

from __future__ import annotations

from datatune_core.transformation.expand import ExpandedTask, expand_task
from datatune_core.llm import get_client, make_provider
from datatune_core.transformation.plan import make_plan
from datatune_core.transformation.schema import propose_mapping
from datatune_core.spec import Example, TaskSpec
from tests.fakes.messages_server import MessagesServer

from .conftest import MC_COLUMNS, mc_rows, write_dataset

SPEC = TaskSpec("Answer the multiple-choice question.", [Example("Which is red?\nOptions:\n- tomato\n- sky",
                                                                 "tomato")])


def _client(srv):
    prov = make_provider("anthropic", api_key=srv.api_key, base_url=srv.url)
    return get_client(provider=prov, use_cache=False)


def _props(req):
    tools = req.get("tools") or []
    return set((tools[0].get("input_schema") or {}).get("properties", {})) if tools else set()


def test_stage_replies_over_the_wire(tmp_path):
    rec = write_dataset(tmp_path, "t/mc", mc_rows(5), MC_COLUMNS)
    mode = {"schema": "valid"}

    def responder(req):
        p = _props(req)
        if "task_kind" in p:
            return {"description": "Pick the right option.", "input_format": "question + options",
                    "output_format": "option text", "trends": [], "task_kind": "multiple_choice"}
        if "irrelevant" in p:
            if mode["schema"] == "valid":
                return {"input": ["question", "choices"], "output": "answer", "irrelevant": ["id"]}
            return {"input": ["question", "context_passage"], "output": "answer", "irrelevant": ["id"]}
        if "steps" in p:
            return {"steps": []} if mode.get("plan") == "empty" else {
                "steps": ["Use question and choices as input.", "Use answer as output."], "deterministic": True,
                "template_input": "{{ question }}", "template_output": "{{ answer }}"}
        return "not json"

    with MessagesServer(responder=responder) as srv:
        c = _client(srv)
        exp = expand_task(SPEC, c)
        assert exp.author == "llm" and exp.task_kind == "multiple_choice"
        m = propose_mapping(exp, rec, None, c)
        assert m.author == "llm" and m.input_columns == ["question", "choices"] and m.roles["id"] == "irrelevant"
        mode["schema"] = "hallucinated"
        m2 = propose_mapping(exp, rec, None, c)
        assert "context_passage" not in m2.roles and any("do not exist" in n for n in m2.notes)
        p = make_plan(exp, m, mc_rows(3), c)
        assert p.author == "llm" and p.deterministic and p.template.input == "{{ question }}"
        mode["plan"] = "empty"
        p2 = make_plan(exp, m, mc_rows(3), c)
        assert p2.author == "heuristic" and any("empty plan" in n for n in p2.notes)
        assert len(srv.billed()) >= 5

    with MessagesServer(responder=lambda req: "Sorry, I cannot produce JSON here.") as srv:
        exp = expand_task(SPEC, _client(srv))  # malformed (after the client's one repair retry)
        assert exp.author == "heuristic" and "LLM expansion failed" in exp.trends[0]
        assert isinstance(exp, ExpandedTask)
