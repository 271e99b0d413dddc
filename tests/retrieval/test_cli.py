"""`datatune retrieve` (table, batch JSONL round trip) and `datatune catalog` commands."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from datatune_core.cli import app

from .conftest import RECORDS, write_catalog

pytestmark = pytest.mark.slow  # builds a real MiniLM index

runner = CliRunner()


def minimal_catalog(path):
    """Only the required keys: id, name, description."""
    return write_catalog(path, [{"id": i, "name": n, "description": d} for i, n, d, *_ in RECORDS])


def test_batch_round_trip(home, tmp_path):
    cat = minimal_catalog(tmp_path / "min.jsonl.gz")
    q = tmp_path / "q.jsonl"
    q.write_text("\n".join(json.dumps(x) for x in [
        {"qid": "a", "query": "is this tweet sarcastic?"},
        {"qid": 7, "query": "turn English news into German"},
        {"qid": "c", "query": "explain what a python function does"},
        {"qid": "d", "query": "Label the text.", "examples": [  # the examples name the task: searched too
            {"input": "Oh great, another Monday. I just love traffic", "output": "sarcastic"},
            {"input": "The meeting is at 10", "output": "not sarcastic"}]}]) + "\n", encoding="utf-8")
    out = tmp_path / "r.jsonl"
    r = runner.invoke(app, ["retrieve", "--queries", str(q), "--catalog", str(cat), "--top-k", "25", "--no-rerank",
                            "--output", str(out)])
    assert r.exit_code == 0, r.output
    lines = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert [x["qid"] for x in lines] == ["a", 7, "c", "d"]
    assert [x["ranked"][0] for x in lines] == ["sarcasm_tweets", "en_de_news", "python_docstrings", "sarcasm_tweets"]
    for x in lines:
        assert len(x["ranked"]) == len(set(x["ranked"])) <= len(RECORDS)
    assert (home / "index").is_dir()  # the index is persisted in DATATUNE_HOME


def test_batch_errors_name_the_line(home, tmp_path):
    cat = minimal_catalog(tmp_path / "min.jsonl")
    q = tmp_path / "q.jsonl"
    q.write_text('{"qid": 1, "query": "x"}\n{"qid": 2}\n', encoding="utf-8")
    r = runner.invoke(app, ["retrieve", "--queries", str(q), "--catalog", str(cat), "--output", str(tmp_path / "o")])
    assert r.exit_code != 0 and "line 2" in str(r.exception)


def test_single_query_table_and_json(home, tmp_path):
    cat = minimal_catalog(tmp_path / "min.jsonl")
    r = runner.invoke(app, ["retrieve", "film reviews positive or negative", "--catalog", str(cat), "--top-k", "3",
                            "--no-rerank"])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0].split()[:2] == ["rank", "dataset_id"] and "movie_reviews" in lines[2]
    assert len([x for x in lines if x[:1].isdigit()]) == 3
    r = runner.invoke(app, ["retrieve", "film reviews", "--catalog", str(cat), "--top-k", "2", "--no-rerank",
                            "--json"])
    data = json.loads(r.output)
    assert data["candidates"][0]["dataset_id"] == "movie_reviews" and len(data["candidates"]) == 2


def test_catalog_commands(home, tmp_path):
    f = tmp_path / "faq.csv"
    f.write_text("question,answer\nHow do I reset my password?,Use the link on the login page.\n", encoding="utf-8")
    r = runner.invoke(app, ["catalog", "profile", str(f)])
    assert r.exit_code == 0 and json.loads(r.output.splitlines()[0])["configs"][0]["columns"]["question"] == "string"
    r = runner.invoke(app, ["catalog", "add", str(f), "--description", "Customer support FAQ"])
    assert r.exit_code == 0 and "local/faq" in r.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "ok", "name": "ok", "description": "fine"}\n{oops\n', encoding="utf-8")
    r = runner.invoke(app, ["catalog", "add", str(bad), "--catalog-file"])
    assert r.exit_code == 0 and "1 records, 1 bad lines" in r.output and "bad.jsonl:2" in r.output
    r = runner.invoke(app, ["catalog", "list", "--json"])
    listed = json.loads(r.output)["catalogs"]
    assert any(c["catalog"].endswith("local.jsonl") and c["records"] == 1 for c in listed)
    user_cats = [str(home / "catalogs" / "local.jsonl"), str(home / "catalogs" / "bad.jsonl")]
    args = sum([["--catalog", c] for c in user_cats], [])
    r = runner.invoke(app, ["catalog", "index", *args])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output.strip().splitlines()[-1])["n_records"] == 2
    r = runner.invoke(app, ["retrieve", "password reset help desk", *args, "--no-rerank", "--top-k", "1"])
    assert "local/faq" in r.output
    r = runner.invoke(app, ["catalog", "show", "local/faq", *args, "--rows", "1"])
    assert r.exit_code == 0 and "reset my password" in r.output


def test_retrieve_modes_on_the_command_line(home, tmp_path):
    cat = minimal_catalog(tmp_path / "min.jsonl.gz")
    for mode in ("hybrid", "rrf", "bm25", "dense"):
        r = runner.invoke(app, ["retrieve", "is this tweet sarcastic?", "--catalog", str(cat), "--no-rerank",
                                "--mode", mode, "--json"])
        assert r.exit_code == 0, (mode, r.output)
        assert json.loads(r.stdout)["candidates"][0]["dataset_id"] == "sarcasm_tweets", mode
    bad = runner.invoke(app, ["retrieve", "sarcasm", "--catalog", str(cat), "--no-rerank", "--mode", "best"])
    assert bad.exit_code != 0 and "--mode must be hybrid, rrf, bm25 or dense" in str(bad.exception or bad.output)
