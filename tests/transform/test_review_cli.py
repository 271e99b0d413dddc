"""The review commands the app's buttons call: candidates list/accept/reject, rows list/accept/reject/edit/reset,
transform run --mode/--preview/--json."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from datatune_core.cli import app

runner = CliRunner()


def cli(*args: str) -> str:
    res = runner.invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res.stdout


def fails(*args: str) -> str:
    """The one-line message `datatune` prints for an error users can hit (main() prints str(exception))."""
    from datatune_core.errors import user_error_message

    res = runner.invoke(app, list(args))
    assert res.exit_code != 0 and res.exception is not None
    msg = user_error_message(res.exception)
    assert msg is not None, f"not a user error: {res.exception!r}"
    return msg


def test_candidates_commands(store, project):
    got = json.loads(cli("candidates", "list", "tr", "--json"))
    assert [c["dataset"] for c in got] == ["test/mc", "test/qa"] and {c["decision"] for c in got} == {"accepted"}
    assert json.loads(cli("candidates", "reject", "tr", "test/qa", "--json"))["decision"] == "rejected"
    assert [c["dataset_id"] for c in store.list_candidates(project, decision="accepted")] == ["test/mc"]
    cli("candidates", "accept", "tr", "test/qa", "--config", "default")
    assert len(store.list_candidates(project, decision="accepted")) == 2
    assert "has no config 'nope'; it has: default" in fails("candidates", "accept", "tr", "test/qa", "--config", "nope")
    assert "is not a candidate of this project" in fails("candidates", "accept", "tr", "nope/ds")


def test_rows_commands_and_transform_modes(store, project):
    out = json.loads(cli("transform", "run", "tr", "--target", "12", "--no-llm", "--json").splitlines()[-1])
    assert out["status"] == "done" and out["result"]["kept"] == 12
    rows = json.loads(cli("rows", "list", "tr", "--json", "--limit", "100"))
    assert len(rows) == 12 and set(rows[0]) >= {"id", "dataset", "config", "source_row_id", "input", "output",
                                                "status", "reason"}
    a, b, c = rows[0]["id"], rows[1]["id"], rows[2]["id"]
    assert json.loads(cli("rows", "reject", "tr", str(a), str(b), "--reason", "off-topic", "--json"))["rejected"] == 2
    edited = json.loads(cli("rows", "edit", "tr", str(c), "--output", "my fix", "--json"))
    assert edited["status"] == "edited" and edited["output"] == "my fix"
    listed = json.loads(cli("rows", "list", "tr", "--status", "rejected", "--json"))
    assert {r["id"] for r in listed} == {a, b} and all(r["reason"] == "user_rejected: off-topic" for r in listed)
    assert "You rejected this row: off-topic." in cli("rows", "list", "tr", "--status", "rejected")  # plain words
    pre = json.loads(cli("transform", "run", "tr", "--target", "12", "--no-llm", "--preview", "--json"))["preview"]
    assert pre["new"] == 2 and pre["left_as_decided"] == 3
    cli("transform", "run", "tr", "--target", "12", "--no-llm")
    cli("transform", "run", "tr", "--target", "12", "--no-llm", "--mode", "retransform")
    cli("transform", "run", "tr", "--target", "12", "--no-llm", "--mode", "retry-failed")
    after = {r["id"]: r for r in json.loads(cli("rows", "list", "tr", "--json", "--limit", "100"))}
    assert len(after) == 14 and after[a]["status"] == after[b]["status"] == "rejected"
    assert after[c]["output"] == "my fix" and sum(r["status"] in ("kept", "edited") for r in after.values()) == 12
    cli("rows", "accept", "tr", str(a))
    cli("rows", "reset", "tr", str(c))
    assert store.get_row(a).status == "kept" and store.get_row(c).output != "my fix"
    assert "--status must be one of kept, rejected, edited, filtered" in fails("rows", "list", "tr", "--status", "weird")
    assert "No row with id 99999 in this project" in fails("rows", "reject", "tr", "99999")
    assert "mode must be one of continue, retransform, retry-failed" in fails("transform", "run", "tr", "--mode", "again")
