"""Local file profiling for every format, with tiny fixtures written here."""

from __future__ import annotations

import json
import re
import zipfile

import pytest

from datatune_core.catalog.records import load_rows, profile_file
from datatune_core.errors import UserError
from datatune_core.catalog.localfiles import iter_rows


def test_csv_bom_types_and_stable_ids(tmp_path):
    p = tmp_path / "reviews.csv"
    p.write_bytes("\ufefftext,stars,score\n\"Great, really\",5,0.9\nBad,1,0.1\n".encode("utf-8"))
    rec = profile_file(p, description="Reviews")
    cfg = rec.configs[0]
    assert cfg.columns == {"text": "string", "stars": "int64", "score": "float64"}  # BOM stripped from 'text'
    assert cfg.splits == {"train": 2} and cfg.sample_rows[0]["text"] == "Great, really"
    assert rec.description.startswith("Reviews") and "2 rows" in rec.description and rec.notes == []
    first = list(load_rows(rec))
    assert first == list(load_rows(rec)) and [r for r, _ in first] == ["default:0", "default:1"]


def test_csv_mixed_encoding_is_decoded_and_reported(tmp_path):
    p = tmp_path / "mixed.csv"
    p.write_bytes("name,city\nJosé,Málaga\n".encode("utf-8") + "Zoë,Köln\n".encode("cp1252"))
    rec = profile_file(p)
    rows = [r for _, r in iter_rows(p)]
    assert rows == [{"name": "José", "city": "Málaga"}, {"name": "Zoë", "city": "Köln"}]
    assert any("not valid UTF-8" in n and "line 3" in n for n in rec.notes)


def test_csv_ragged_single_column_semicolon_and_tsv(tmp_path):
    p = tmp_path / "ragged.csv"
    p.write_text("a,b,c\n1,2,3\n4,5\n6,7,8,9\n", encoding="utf-8")
    rec = profile_file(p)
    rows = [r for _, r in iter_rows(p)]
    assert rows[1] == {"a": "4", "b": "5", "c": None} and rows[2]["_extra"] == ["9"]
    assert any("1 row(s) had fewer" in n and "1 had more" in n for n in rec.notes)
    one = tmp_path / "one.csv"
    one.write_text("sentence\nHello there\nGood night\n", encoding="utf-8")
    assert profile_file(one).configs[0].columns == {"sentence": "string"}
    semi = tmp_path / "semi.csv"
    semi.write_text("q;a\nwhy;because\nhow;so\n", encoding="utf-8")
    assert [r for _, r in iter_rows(semi)][0] == {"q": "why", "a": "because"}
    tsv = tmp_path / "t.tsv"
    tsv.write_text("x\ty\n1,5\t2\n", encoding="utf-8")
    assert [r for _, r in iter_rows(tsv)] == [{"x": "1,5", "y": "2"}]
    dup = tmp_path / "dup.csv"
    dup.write_text("a,a,\n1,2,3\n", encoding="utf-8")
    assert list(profile_file(dup).configs[0].columns) == ["a", "a_2", "column_3"]


def test_very_wide_csv(tmp_path):
    p = tmp_path / "wide.csv"
    cols = [f"f{i}" for i in range(600)]
    p.write_text(",".join(cols) + "\n" + ",".join("1" for _ in cols) + "\n", encoding="utf-8")
    rec = profile_file(p)
    assert len(rec.configs[0].columns) == 600 and any("Very wide" in n for n in rec.notes)
    assert len(rec.description) < 400


def test_empty_and_unsupported_files(tmp_path):
    e = tmp_path / "empty.csv"
    e.write_text("only,header\n", encoding="utf-8")
    with pytest.raises(UserError, match="no data rows"):
        profile_file(e)
    with pytest.raises(UserError, match="does not exist"):
        profile_file(tmp_path / "nope.csv")
    (tmp_path / "x.docx").write_text("hi")
    with pytest.raises(UserError, match="Unsupported file type .docx"):
        profile_file(tmp_path / "x.docx")
    (tmp_path / "old.xls").write_bytes(b"\xd0\xcf")
    with pytest.raises(UserError, match="save it as .xlsx"):
        profile_file(tmp_path / "old.xls")
    (tmp_path / "folder").mkdir()
    with pytest.raises(UserError, match="save_to_disk"):
        profile_file(tmp_path / "folder")


def test_json_list_object_and_jsonl_with_broken_lines(tmp_path):
    a = tmp_path / "a.json"
    a.write_text(json.dumps([{"q": "1+1", "a": 2}, {"q": "2+2", "a": 4}]), encoding="utf-8")
    assert profile_file(a).configs[0].columns == {"q": "string", "a": "int64"}
    b = tmp_path / "b.json"
    b.write_text(json.dumps({"version": 1, "data": [{"q": "x"}]}), encoding="utf-8")
    assert [r for _, r in iter_rows(b)] == [{"q": "x"}]
    c = tmp_path / "c.jsonl"
    c.write_text('{"t": "a"}\n{"t": "b",\n\n{"t": "c"}\n"just text"\n', encoding="utf-8")
    rec = profile_file(c)
    assert [rid for rid, _ in iter_rows(c)] == ["default:0", "default:3", "default:4"]  # ids = line positions
    assert any("1 line(s) are not valid JSON" in n and "line 2" in n for n in rec.notes)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{nope\n{also nope\n", encoding="utf-8")
    with pytest.raises(UserError, match="no data rows"):
        profile_file(bad)
    obj = tmp_path / "obj.json"
    obj.write_text(json.dumps({"a": 1}), encoding="utf-8")
    with pytest.raises(UserError, match="not a list of rows"):
        profile_file(obj)


def test_parquet_and_corrupt_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": ["a", "b", "c"], "n": [1, 2, 3], "tags": [["x"], [], ["y", "z"]]}), p)
    rec = profile_file(p)
    assert rec.configs[0].columns == {"text": "string", "n": "int64", "tags": "list[string]"}
    assert [r for _, r in iter_rows(p, offset=2)] == [{"text": "c", "n": 3, "tags": ["y", "z"]}]
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(p.read_bytes()[:40])
    with pytest.raises(UserError, match="not a readable Parquet file"):
        profile_file(bad)


def _with_cached_values(path, cached: dict[str, str]) -> None:
    """Add <v> cached results to formula cells, as Excel does when it saves (openpyxl cannot write them)."""
    src = zipfile.ZipFile(path)
    items = {n: src.read(n) for n in src.namelist()}
    src.close()
    xml = items["xl/worksheets/sheet1.xml"].decode()
    for ref, val in cached.items():
        xml = re.sub(rf'(<c r="{ref}"[^>]*>)(<f>[^<]*</f>)(<v\s*/>|<v></v>)?', rf"\1\2<v>{val}</v>", xml)
    items["xl/worksheets/sheet1.xml"] = xml.encode()
    with zipfile.ZipFile(path, "w") as z:
        for n, data in items.items():
            z.writestr(n, data)


def test_excel_sheets_formulas_and_dates(tmp_path):
    import datetime

    import openpyxl

    p = tmp_path / "book.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "prices"
    ws.append(["item", "qty", "price", "total", "day"])
    ws.append(["pen", 2, 1.5, "=B2*C2", datetime.date(2024, 5, 1)])
    ws.append(["cup", 1, 4.0, "=B3*C3", datetime.date(2024, 5, 2)])
    other = wb.create_sheet("notes")
    other.append(["note"])
    other.append(["hello"])
    wb.create_sheet("empty")
    wb.save(p)
    rec = profile_file(p)
    assert [c.name for c in rec.configs] == ["prices", "notes"]
    assert any("formulas without saved values" in n for n in rec.notes)
    _with_cached_values(p, {"D2": "3", "D3": "4"})
    rec = profile_file(p)
    rows = [r for _, r in load_rows(rec, "prices")]
    assert rows[0]["total"] == 3 and rows[1]["total"] == 4  # values, not "=B2*C2"
    assert rows[0]["day"].startswith("2024-05-01")
    assert any("2 formula cell(s) read as their computed values" in n for n in rec.notes)
    assert [rid for rid, _ in load_rows(rec, "notes")] == ["notes:0"]
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(UserError, match="not a readable .xlsx"):
        profile_file(broken)


def test_save_to_disk_folders_and_missing_shard(tmp_path):
    import datasets

    ds = datasets.Dataset.from_dict({"text": ["a", "b", "c"], "label": [0, 1, 0]},
                                    features=datasets.Features({"text": datasets.Value("string"),
                                                                "label": datasets.ClassLabel(names=["n", "p"])}))
    one = tmp_path / "one"
    ds.save_to_disk(str(one))
    rec = profile_file(one)
    assert rec.configs[0].columns == {"text": "string", "label": "class_label[2]"}
    assert rec.configs[0].splits == {"train": 3}
    dd = datasets.DatasetDict({"train": ds, "test": ds.select([0])})
    two = tmp_path / "two"
    dd.save_to_disk(str(two))
    rec2 = profile_file(two)
    assert rec2.configs[0].splits == {"train": 3, "test": 1}
    assert [rid for rid, _ in load_rows(rec2)][-1] == "test:0"
    shard = next((two / "test").glob("*.arrow"))
    shard.unlink()
    with pytest.raises(UserError, match="missing data shard"):
        profile_file(two)
