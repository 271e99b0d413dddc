"""`datatune transform repair` and `datatune rows apply-similar`: list first, apply with --apply, run twice."""

from __future__ import annotations

import json

from .test_repair import make_project, transform
from .test_review_cli import cli, fails


def test_transform_repair_cli_lists_tries_applies_and_is_idempotent(store, tmp_path):
    pid = make_project(store, tmp_path)
    transform(store, pid)
    listing = cli("transform", "repair", "rv", "--no-llm")
    assert "[1] 6 row(s) of my/reviews: answer not allowed ('pos' 3, 'neg' 3)" in listing
    clusters = json.loads(cli("transform", "repair", "rv", "--no-llm", "--json"))["clusters"]
    n = next(c["id"] for c in clusters if c["code"] == "label_not_in_space")
    dry = cli("transform", "repair", "rv", "--cluster", str(n), "--no-llm")
    assert "fix (label_map, by heuristic): Rename the answers" in dry and "filtered -> kept: pos -> positive" in dry
    assert "With this fix, 6 of 6 row(s) pass" in dry and store.count_rows(pid, status="filtered") >= 6
    # asked while groups exist (after the fix none is left: every GOOD row passes the validator)
    assert "There is no group 99" in fails("transform", "repair", "rv", "--cluster", "99", "--no-llm")
    got = json.loads(cli("transform", "repair", "rv", "--cluster", str(n), "--apply", "--no-llm", "--json"))
    assert got["job"]["status"] == "done" and got["job"]["result"]["now_kept"] == 6
    assert {r.output for r in store.list_rows(pid, limit=999)} <= {"positive", "negative"}
    again = json.loads(cli("transform", "repair", "rv", "--no-llm", "--json"))["clusters"]
    assert all(c["code"] != "label_not_in_space" for c in again)  # nothing of that group is left


def test_rows_apply_similar_cli(store, tmp_path):
    pid = make_project(store, tmp_path)
    transform(store, pid)
    pos = [r for r in store.list_rows(pid, limit=999) if r.output == "pos"]
    cli("rows", "edit", "rv", str(pos[0].id), "--output", "positive")
    listing = cli("rows", "apply-similar", "rv", str(pos[0].id))
    assert "2 other row(s) share this pattern" in listing and f"#{pos[1].id} (same wrong text): pos -> positive" \
        in listing
    assert store.get_row(pos[1].id).output == "pos"
    got = json.loads(cli("rows", "apply-similar", "rv", str(pos[0].id), "--apply", "--json"))
    assert got["applied"]["changed"] == 2 and sorted(got["applied"]["rows"]) == [pos[1].id, pos[2].id]
    assert json.loads(cli("rows", "apply-similar", "rv", str(pos[0].id), "--apply", "--json"))["applied"][
        "changed"] == 0
    assert "has no edit yet" in fails("rows", "apply-similar", "rv", str(pos[1].id + 100))
