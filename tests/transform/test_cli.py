"""`datatune transform ...` and `datatune synth ...` over a project, offline (no LLM)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from datatune_core.cli import app
from datatune_core.errors import UserError

runner = CliRunner()


def ok(args):
    res = runner.invoke(app, args)
    assert res.exit_code == 0, (res.output, res.exception)
    return res.output


def test_transform_cli_chain_offline(store, project, tmp_path):
    exp = json.loads(ok(["transform", "expand", str(project), "--no-llm"]))
    assert exp["version"] == 1 and exp["author"] == "heuristic"
    m = json.loads(ok(["transform", "map", str(project), "test/qa", "--no-llm"]))
    assert m["version"] == 1 and m["output_column"] == "label" and set(m["input_columns"]) == {"passage", "query"}
    m2 = json.loads(ok(["transform", "map", str(project), "test/qa", "--no-llm", "--set", "passage=irrelevant"]))
    assert m2["version"] == 2 and m2["author"] == "user" and m2["input_columns"] == ["query"]
    pl = json.loads(ok(["transform", "plan", str(project), "test/qa", "--no-llm"]))
    assert pl["version"] == 1 and pl["deterministic"] and "query" in pl["template"]["input"]
    edit = tmp_path / "plan.json"
    edit.write_text(json.dumps({"steps": ["Use the query as input.", "Use the label as output."]}))
    pl2 = json.loads(ok(["transform", "plan", str(project), "test/qa", "--no-llm", "--edit", str(edit)]))
    assert pl2["version"] == 2 and pl2["author"] == "user" and pl2["steps"][0] == "Use the query as input."
    out = ok(["transform", "dry-run", str(project), "test/mc", "--no-llm", "-k", "2"])
    assert "path: template" in out and out.count("kept") >= 2
    out = ok(["transform", "run", str(project), "--no-llm", "--target", "70", "--batch-size", "8"])
    assert "done" in out
    st = json.loads(ok(["transform", "status", str(project)]))
    assert st["rows"]["by_status"]["kept"] == 70 and st["job"]["result"]["datasets"][1]["plan_version"] == 2
    out = ok(["transform", "export", str(project), "train.jsonl"])
    path = out.strip().split("exported to ")[1]
    assert len(open(path).read().splitlines()) == 70
    res = runner.invoke(app, ["transform", "export", str(project), "../../outside.jsonl"])
    assert isinstance(res.exception, UserError) and "outside the export folder" in str(res.exception)
    assert "saved to" in ok(["transform", "save", str(project)])
    assert "synthetic" in ok(["synth", "--help"]) and json.loads(ok(["synth", "status", str(project)]))["kept"] == 0


def test_transform_all_chain_offline(store, project):
    out = ok(["transform", "all", str(project), "--no-llm", "--target", "50", "--export-name", "chain.jsonl"])
    assert "test/mc: template path" in out and "exported to" in out
    path = out.strip().split("exported to ")[1].splitlines()[0]
    rows = [json.loads(line) for line in open(path)]
    assert len(rows) == 50 and rows[0]["path"] == "template" and json.loads(rows[0]["provenance"])["plan_version"] == 1
