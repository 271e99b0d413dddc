"""One reader per local file format: CSV/TSV, JSON/JSONL, Parquet, Excel and `datasets` save_to_disk folders, each a
stream of (row id, row) with its problems noted, and the column types each format declares."""

from __future__ import annotations

import csv
import datetime as _dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from datatune_core.errors import UserError


CSV_SUFFIXES = {".csv", ".tsv", ".tab", ".txt"}
JSON_SUFFIXES = {".json", ".jsonl", ".ndjson"}
PARQUET_SUFFIXES = {".parquet", ".pq"}
EXCEL_SUFFIXES = {".xlsx", ".xlsm"}
MAX_NOTED = 5

csv.field_size_limit(1 << 27)  # long text cells


def detect_format(path: Path) -> str:
    if path.is_dir():
        if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
            return "save_to_disk"
        raise UserError(f"{path} is a folder but not a `datasets` save_to_disk folder (no dataset_dict.json or "
                        "state.json). Pass a file, or a folder written by Dataset.save_to_disk().")
    if not path.exists():
        raise UserError(f"{path} does not exist. Check the path.")
    suf = path.suffix.lower()
    if suf in CSV_SUFFIXES:
        return "csv"
    if suf in JSON_SUFFIXES:
        return "json"
    if suf in PARQUET_SUFFIXES:
        return "parquet"
    if suf in EXCEL_SUFFIXES:
        return "excel"
    if suf == ".xls":
        raise UserError(f"{path.name} is an old .xls workbook; save it as .xlsx (Excel or LibreOffice) and add that.")
    raise UserError(f"Unsupported file type {suf or '(none)'} for {path.name}. Supported: CSV, TSV, JSON, JSONL, "
                    "Parquet, Excel .xlsx, or a datasets save_to_disk folder.")


# ------------------------------------------------------------------------------------------ CSV
def _decoded_lines(path: Path, notes: list[str] | None) -> Iterator[str]:
    """Lines decoded as UTF-8, falling back per line to cp1252 (then latin-1); the fallback is noted."""
    fallback = 0
    first_bad = None
    with open(path, "rb") as fh:
        for n, raw in enumerate(fh, 1):
            if n == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError:
                fallback += 1
                first_bad = first_bad or n
                try:
                    yield raw.decode("cp1252")
                except UnicodeDecodeError:
                    yield raw.decode("latin-1")
    if fallback and notes is not None:
        notes.append(f"{fallback} line(s) were not valid UTF-8 (first: line {first_bad}) and were decoded as "
                     "cp1252/latin-1; check accented characters, or re-save the file as UTF-8.")


def _delimiter(path: Path) -> str:
    if path.suffix.lower() in {".tsv", ".tab"}:
        return "\t"
    head = []
    for i, line in enumerate(_decoded_lines(path, None)):
        head.append(line)
        if i >= 20:
            break
    sample = "".join(head)
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _unique_header(cells: list[str]) -> list[str]:
    out: list[str] = []
    seen: dict[str, int] = {}
    for i, c in enumerate(cells):
        name = (c or "").strip() or f"column_{i + 1}"
        if name in seen:
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        else:
            seen[name] = 1
        out.append(name)
    return out


def _csv_rows(path: Path, notes: list[str] | None) -> Iterator[tuple[str, dict]]:
    reader = csv.reader(_decoded_lines(path, notes), delimiter=_delimiter(path))
    header = next(reader, None)
    if header is None:
        return
    cols = _unique_header(header)
    short = long = 0
    idx = 0
    for cells in reader:
        if not cells or (len(cells) == 1 and not cells[0].strip() and len(cols) > 1):
            continue
        row: dict[str, Any] = {c: (cells[i] if i < len(cells) and cells[i] != "" else None) for i, c in enumerate(cols)}
        if len(cells) < len(cols):
            short += 1
        elif len(cells) > len(cols):
            long += 1
            row["_extra"] = cells[len(cols):]
        yield f"default:{idx}", row
        idx += 1
    if notes is not None and (short or long):
        notes.append(f"Ragged rows: {short} row(s) had fewer cells than the header (filled with empty values), "
                     f"{long} had more (kept under '_extra').")


# ----------------------------------------------------------------------------------------- JSON
def _json_rows(path: Path, notes: list[str] | None) -> Iterator[tuple[str, dict]]:
    text_head = path.read_bytes()[:1].decode("utf-8", "ignore") if path.stat().st_size else ""
    if path.suffix.lower() == ".json" or text_head == "[":
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig", errors="replace"))
        except json.JSONDecodeError:
            data = None  # maybe JSON Lines named .json
        if data is not None:
            if isinstance(data, dict):
                lists = [v for v in data.values() if isinstance(v, list) and v and isinstance(v[0], dict)]
                if len(lists) != 1:
                    raise UserError(f"{path.name} is a JSON object, not a list of rows. Save the rows as a JSON "
                                    "list of objects or as JSON Lines (one object per line).")
                data = lists[0]
            if not isinstance(data, list):
                raise UserError(f"{path.name} holds a single JSON value; save the rows as a list of objects.")
            for i, item in enumerate(data):
                yield f"default:{i}", item if isinstance(item, dict) else {"text": item}
            return
    bad: list[str] = []
    n_bad = 0
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as e:
                n_bad += 1
                if len(bad) < MAX_NOTED:
                    bad.append(f"line {n} ({e.msg})")
                continue
            yield f"default:{n - 1}", item if isinstance(item, dict) else {"text": item}
    if n_bad and notes is not None:
        notes.append(f"{n_bad} line(s) are not valid JSON and were skipped: {', '.join(bad)}"
                     f"{' …' if n_bad > len(bad) else ''}.")


# -------------------------------------------------------------------------------------- Parquet
def _parquet_file(path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as e:
        raise UserError(f"{path.name} is not a readable Parquet file ({str(e)[:200]}). It may be truncated or "
                        "corrupt: export it again (e.g. df.to_parquet) and re-add it.") from e


def _parquet_rows(path: Path, notes: list[str] | None) -> Iterator[tuple[str, dict]]:
    import pyarrow as pa

    pf = _parquet_file(path)
    i = 0
    try:
        for batch in pf.iter_batches(batch_size=2000):
            for row in batch.to_pylist():
                yield f"default:{i}", row
                i += 1
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as e:
        raise UserError(f"{path.name}: Parquet data after row {i} cannot be read ({str(e)[:200]}). Export the file "
                        "again and re-add it.") from e


# ---------------------------------------------------------------------------------------- Excel
def _workbook(path: Path, data_only: bool = True):
    import openpyxl

    try:
        return openpyxl.load_workbook(path, read_only=True, data_only=data_only)
    except Exception as e:  # zipfile.BadZipFile, KeyError, InvalidFileException
        raise UserError(f"{path.name} is not a readable .xlsx workbook ({type(e).__name__}: {str(e)[:150]}). "
                        "Open and save it again in Excel or LibreOffice, or export the sheet as CSV.") from e


def _cell(v: Any) -> Any:
    if isinstance(v, (_dt.datetime, _dt.date, _dt.time)):
        return v.isoformat()
    return v


def _excel_rows(path: Path, sheet: str | None, notes: list[str] | None) -> Iterator[tuple[str, dict]]:
    wb = _workbook(path)
    try:
        names = [sheet] if sheet and sheet != "default" else wb.sheetnames[:1]
        for name in names:
            if name not in wb.sheetnames:
                raise UserError(f"{path.name} has no sheet {name!r}; sheets: {', '.join(wb.sheetnames)}.")
            it = wb[name].iter_rows(values_only=True)
            header = next(it, None)
            if header is None:
                continue
            cols = _unique_header([str(h) if h is not None else "" for h in header])
            idx = 0
            for cells in it:
                if cells is None or all(c is None for c in cells):
                    continue
                yield f"{name}:{idx}", {c: _cell(cells[i]) if i < len(cells) else None for i, c in enumerate(cols)}
                idx += 1
    finally:
        wb.close()


def _excel_formula_note(path: Path, sheet: str, rows: list[dict]) -> str | None:
    """Formula cells with no cached value read as empty; say so (files written by scripts often lack them)."""
    wb = _workbook(path, data_only=False)
    try:
        formulas = 0
        for r_i, cells in enumerate(wb[sheet].iter_rows(min_row=2, max_row=201, values_only=True)):
            for c_i, v in enumerate(cells or ()):
                if isinstance(v, str) and v.startswith("="):
                    formulas += 1
                    if r_i < len(rows):
                        vals = list(rows[r_i].values())
                        if c_i < len(vals) and vals[c_i] is None:
                            return (f"Sheet {sheet!r} has formulas without saved values (they read as empty). "
                                    "Open the file in Excel/LibreOffice and save it, so computed values are stored.")
        return f"Sheet {sheet!r}: {formulas} formula cell(s) read as their computed values." if formulas else None
    finally:
        wb.close()


# ----------------------------------------------------------------------------- save_to_disk
def _check_shards(folder: Path) -> None:
    splits = [folder]
    dd = folder / "dataset_dict.json"
    if dd.is_file():
        names = json.loads(dd.read_text(encoding="utf-8")).get("splits", [])
        splits = [folder / s for s in names]
    for sp in splits:
        state = sp / "state.json"
        if not state.is_file():
            raise UserError(f"{sp} is missing state.json, so this save_to_disk folder is incomplete. Copy the whole "
                            "folder again or re-run dataset.save_to_disk().")
        for f in json.loads(state.read_text(encoding="utf-8")).get("_data_files", []):
            if not (sp / f["filename"]).is_file():
                raise UserError(f"{sp} is missing data shard {f['filename']} (listed in state.json). Copy the "
                                "missing file or re-run dataset.save_to_disk().")


def _load_from_disk(folder: Path):
    _check_shards(folder)
    import datasets

    try:
        return datasets.load_from_disk(str(folder))
    except (FileNotFoundError, ValueError, OSError) as e:
        raise UserError(f"{folder} cannot be loaded as a save_to_disk dataset ({str(e)[:200]}). Re-save it with "
                        "dataset.save_to_disk().") from e


def _disk_splits(folder: Path) -> dict:
    import datasets

    ds = _load_from_disk(folder)
    return dict(ds) if isinstance(ds, datasets.DatasetDict) else {"train": ds}


def _disk_rows(folder: Path) -> Iterator[tuple[str, dict]]:
    for split, ds in _disk_splits(folder).items():
        for i, row in enumerate(ds):
            yield f"{split}:{i}", dict(row)


def _feature_type(f: Any) -> str:
    import datasets

    if isinstance(f, datasets.Value):
        return f.dtype
    if isinstance(f, datasets.ClassLabel):
        return f"class_label[{f.num_classes}]"
    if isinstance(f, (datasets.Sequence, datasets.List, list)):
        inner = f[0] if isinstance(f, list) else f.feature
        return f"list[{_feature_type(inner)}]"
    if isinstance(f, dict):
        return "struct{" + ", ".join(f"{k}: {_feature_type(v)}" for k, v in f.items()) + "}"
    return type(f).__name__.lower()


def _arrow_type(t: Any) -> str:
    import pyarrow as pa

    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_floating(t):
        return "float64" if t.bit_width == 64 else "float32"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return f"list[{_arrow_type(t.value_type)}]"
    return str(t)
