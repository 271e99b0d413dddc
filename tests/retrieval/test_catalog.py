"""Catalog parsing (bad lines reported with file and line), rows, user catalogs."""

from __future__ import annotations

import gzip
import json

import pytest

from datatune_core.catalog import records as C
from datatune_core.errors import UserError

from .conftest import bench_records, hf_records, write_catalog


def test_bad_lines_are_reported_and_the_rest_loads(tmp_path):
    good = hf_records()[:3]
    lines = [json.dumps(good[0]), "{not json", json.dumps({"name": "x", "description": "no id"}),
             json.dumps({"id": "nodesc", "name": "n"}), json.dumps(good[1]), "", json.dumps(good[0]),
             "[1, 2]", json.dumps({"id": "min", "name": "Minimal", "description": "only the required keys"}),
             json.dumps({"id": "badcfg", "description": "d", "configs": [{"columns": {}}]})]
    p = tmp_path / "cat.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = C.load_catalog(p)
    assert [r.id for r in out.records] == ["sarcasm_tweets", "movie_reviews", "min"]
    by_line = {pr.line: pr.message for pr in out.problems}
    assert set(by_line) == {2, 3, 4, 7, 8, 10}
    assert "not valid JSON" in by_line[2] and "missing 'id'" in by_line[3]
    assert "description" in by_line[4] and "duplicate id 'sarcasm_tweets'" in by_line[7]
    assert "first on line 1" in by_line[7] and "config" in by_line[10]
    assert all(str(p) in str(pr) for pr in out.problems)
    m = out.by_id()["min"]
    assert m.name == "Minimal" and m.configs == [] and m.catalog_path == str(p.resolve())


def test_gz_catalog_and_cross_catalog_duplicates(tmp_path):
    a = write_catalog(tmp_path / "a.jsonl.gz", hf_records()[:4])
    b = write_catalog(tmp_path / "b.jsonl", hf_records()[2:6])
    out = C.load_catalogs([a, b])
    ids = [r.id for r in out.records]
    assert len(ids) == len(set(ids)) == 6
    dup = [p for p in out.problems if "already in" in p.message]
    assert len(dup) == 2 and out.by_id()["en_de_news"].catalog_path == str(a.resolve())


def test_truncated_gz_keeps_what_was_read(tmp_path):
    p = write_catalog(tmp_path / "c.jsonl.gz", hf_records())
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    out = C.load_catalog(p)
    assert out.problems and "could not be read to the end" in out.problems[-1].message


def test_record_round_trip():
    r = C.DatasetRecord.from_dict(hf_records()[0])
    again = C.DatasetRecord.from_dict(r.to_dict())
    assert again == r and again.content_hash() == r.content_hash()
    r2 = C.DatasetRecord.from_dict({**r.to_dict(), "description": "changed"})
    assert r2.content_hash() != r.content_hash()


def test_rows_from_catalog_rows_files(tmp_path):
    p = write_catalog(tmp_path / "bb.jsonl", bench_records(tmp_path))
    rec = C.load_catalog(p).by_id()["bigbench/color_quiz"]
    rows = list(C.load_rows(rec))
    assert [rid for rid, _ in rows] == ["default:0", "default:1"]
    assert list(C.load_rows(rec, offset=1)) == rows[1:]
    assert list(C.load_rows(rec, limit=1)) == rows[:1]
    assert C.count_rows(rec) == 1  # the declared split size wins
    with pytest.raises(UserError, match="no config 'nope'"):
        list(C.load_rows(rec, "nope"))
    (tmp_path / "rows" / "color_quiz" / "default.jsonl.gz").unlink()
    with pytest.raises(UserError, match="missing"):
        list(C.load_rows(rec))


def test_metadata_only_and_hub_offline(tmp_path, monkeypatch):
    monkeypatch.delenv("DATATUNE_HUB_ONLINE", raising=False)
    rec = C.DatasetRecord(id="x", name="x", description="d", source="huggingface")
    with pytest.raises(UserError, match="DATATUNE_HUB_ONLINE=1"):
        list(C.load_rows(rec))
    with pytest.raises(UserError, match="no rows available"):
        list(C.load_rows(C.DatasetRecord(id="y", name="y", description="d", source="other")))
    from datatune_core.catalog.hub import search_hub

    with pytest.raises(UserError, match="offline"):
        search_hub("sarcasm")


def test_user_catalogs_local_files_and_default_paths(home, tmp_path):
    f = tmp_path / "reviews.csv"
    f.write_text("text,stars\ngreat phone,5\nbroke in a day,1\n", encoding="utf-8")
    rec = C.add_local_dataset(home, f, description="Phone reviews with star ratings")
    assert rec.id == "local/reviews" and rec.source == "local"
    paths = C.default_catalog_paths(home)
    assert (home / "catalogs" / "local.jsonl") in paths
    assert paths[0] == C.BUNDLED_HF_CATALOG
    loaded = C.load_catalog(home / "catalogs" / "local.jsonl")
    got = loaded.by_id()["local/reviews"]
    assert got.description.startswith("Phone reviews") and got.configs[0].columns == {"text": "string",
                                                                                       "stars": "int64"}
    assert [row for _, row in C.load_rows(got)][1] == {"text": "broke in a day", "stars": "1"}
    f.write_text("text,stars\nok,3\n", encoding="utf-8")
    C.add_local_dataset(home, f)  # re-adding replaces, never duplicates
    again = C.load_catalog(home / "catalogs" / "local.jsonl")
    assert len(again.records) == 1 and again.records[0].configs[0].splits == {"train": 1}
    dest, _ = C.add_catalog_file(home, write_catalog(tmp_path / "mine.jsonl", bench_records(tmp_path)))
    assert dest in C.default_catalog_paths(home)
    moved = C.load_catalog(dest).by_id()["bigbench/fruit_facts"]
    assert len(list(C.load_rows(moved))) == 3  # rows still reachable from the copied catalog


def test_bundled_catalog_loads():
    out = C.load_catalog(C.BUNDLED_HF_CATALOG)
    assert len(out.records) > 1800 and not out.problems
    assert len({r.id for r in out.records}) == len(out.records)


def test_gzip_reader_handles_non_utf8(tmp_path):
    p = tmp_path / "latin.jsonl.gz"
    with gzip.open(p, "wb") as fh:
        fh.write(b'{"id": "a", "name": "a", "description": "caf\xe9"}\n')
    out = C.load_catalog(p)
    assert out.records[0].description.startswith("caf")
