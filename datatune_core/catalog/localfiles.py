"""Local data files -> `DatasetRecord` (profile) and `(row_id, row)` streams (rows).

Formats: CSV/TSV (BOM, per-line encoding fallback to cp1252 with a note, ragged rows padded or kept under
`_extra`, sniffed delimiter), JSON (a list of objects, or an object holding one) and JSONL (broken lines
skipped and reported), Parquet (a corrupt file -> a clear message), Excel .xlsx/.xlsm (one config per sheet,
formula cells read as their cached values), and `datasets` `save_to_disk` folders (Dataset or DatasetDict;
a missing shard -> a clear message). Row ids are stable: `<config or split>:<position in the file>`.

    >>> from datatune_core.catalog.localfiles import profile_path, iter_rows
    >>> rec = profile_path("reviews.csv", description="Product reviews with star ratings")
    >>> rec.configs[0].columns, rec.notes                      # {'text': 'string', 'stars': 'int64'}, []
    >>> list(iter_rows(rec.local_path, limit=2))                # [('default:0', {...}), ('default:1', {...})]
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from datatune_core.catalog.file_readers import (_arrow_type, _cell, _csv_rows, _disk_rows, _disk_splits,
                                               _excel_formula_note, _excel_rows, _feature_type, _json_rows,
                                               _parquet_file, _parquet_rows, _workbook, detect_format)
from datatune_core.catalog.records import ConfigInfo, DatasetRecord, slugify
from datatune_core.errors import UserError


SAMPLE_ROWS = 3
TYPE_SAMPLE = 1000


# ---------------------------------------------------------------------------------- public API
def iter_rows(path: Path | str, config: str | None = None, limit: int | None = None, offset: int = 0,
              notes: list[str] | None = None) -> Iterator[tuple[str, dict]]:
    """Stream `(row_id, row)` from a local file/folder; `config` is the Excel sheet (else ignored)."""
    p = Path(path).expanduser()
    fmt = detect_format(p)
    if fmt == "csv":
        it = _csv_rows(p, notes)
    elif fmt == "json":
        it = _json_rows(p, notes)
    elif fmt == "parquet":
        it = _parquet_rows(p, notes)
    elif fmt == "excel":
        it = _excel_rows(p, config, notes)
    else:
        it = _disk_rows(p)
    n = 0
    for i, item in enumerate(it):
        if i < offset:
            continue
        if limit is not None and n >= limit:
            return
        yield item
        n += 1


def _infer_type(values: list[Any]) -> str:
    vals = [v for v in values if v is not None and v != ""]
    if not vals:
        return "null"
    kinds = set()
    for v in vals:
        if isinstance(v, bool):
            kinds.add("bool")
        elif isinstance(v, int):
            kinds.add("int64")
        elif isinstance(v, float):
            kinds.add("float64")
        elif isinstance(v, (list, tuple)):
            kinds.add("list[" + _infer_type(list(v)[:20]) + "]")
        elif isinstance(v, dict):
            kinds.add("struct")
        else:
            s = str(v).strip()
            if s.lower() in {"true", "false"}:
                kinds.add("bool")
            else:
                try:
                    int(s)
                    kinds.add("int64")
                except ValueError:
                    try:
                        float(s)
                        kinds.add("float64")
                    except ValueError:
                        kinds.add("string")
    if kinds <= {"int64", "float64"} and len(kinds) == 2:
        return "float64"
    return kinds.pop() if len(kinds) == 1 else "string"


def _short(v: Any, n: int = 300) -> Any:
    if isinstance(v, str) and len(v) > n:
        return v[:n] + "…"
    if isinstance(v, (list, tuple)):
        return [_short(x, n) for x in list(v)[:20]]
    if isinstance(v, dict):
        return {k: _short(x, n) for k, x in list(v.items())[:50]}
    if isinstance(v, (bytes, bytearray)):
        return f"<{len(v)} bytes>"
    return _cell(v)


def _profile_stream(rows: Iterator[tuple[str, dict]]) -> tuple[int, dict[str, str], list[dict]]:
    n = 0
    samples: list[dict] = []
    typed: dict[str, list[Any]] = {}
    for _rid, row in rows:
        if n < TYPE_SAMPLE:
            for k, v in row.items():
                if k != "_extra":
                    typed.setdefault(k, []).append(v)
        if len(samples) < SAMPLE_ROWS:
            samples.append({k: _short(v) for k, v in row.items()})
        n += 1
    return n, {k: _infer_type(v) for k, v in typed.items()}, samples


def profile_path(path: Path | str, description: str | None = None, name: str | None = None) -> DatasetRecord:
    """Profile a local file/folder: columns and types, row count, sample rows, a default description."""
    p = Path(path).expanduser().resolve()
    fmt = detect_format(p)
    notes: list[str] = []
    configs: list[ConfigInfo] = []
    if fmt == "excel":
        wb = _workbook(p)
        sheets = list(wb.sheetnames)
        wb.close()
        for sh in sheets:
            n, cols, samples = _profile_stream(_excel_rows(p, sh, notes))
            if n == 0:
                continue
            note = _excel_formula_note(p, sh, samples)
            if note:
                notes.append(note)
            configs.append(ConfigInfo(name=sh, columns=cols, splits={"train": n}, sample_rows=samples, full_size=n))
        if not configs:
            raise UserError(f"{p.name} has no sheet with a header row and data. Put column names in row 1.")
    elif fmt == "save_to_disk":
        splits = _disk_splits(p)
        first = next(iter(splits.values()))
        cols = {k: _feature_type(f) for k, f in first.features.items()}
        samples = [{k: _short(v) for k, v in first[i].items()} for i in range(min(SAMPLE_ROWS, len(first)))]
        sizes = {s: len(d) for s, d in splits.items()}
        configs.append(ConfigInfo(name="default", columns=cols, splits=sizes, sample_rows=samples,
                                  full_size=sum(sizes.values())))
    else:
        n, cols, samples = _profile_stream(iter_rows(p, notes=notes))
        if n == 0:
            raise UserError(f"{p.name} has no data rows. For CSV/TSV the first line must be the header and the "
                            "next lines the rows; for JSON a list of objects.")
        if fmt == "parquet":
            schema = _parquet_file(p).schema_arrow
            cols = {f.name: _arrow_type(f.type) for f in schema}
        configs.append(ConfigInfo(name="default", columns=cols, splits={"train": n}, sample_rows=samples, full_size=n))
    ncols = max(len(c.columns) for c in configs)
    if ncols > 200:
        notes.append(f"Very wide file: {ncols} columns; searches index the first 50 column names.")
    title = name or p.stem
    kind = {"csv": "CSV" if p.suffix.lower() == ".csv" else "delimited text", "json": "JSON",
            "parquet": "Parquet", "excel": "Excel", "save_to_disk": "datasets"}[fmt]
    total = sum(sum(c.splits.values()) for c in configs)
    colnames = list(configs[0].columns)
    auto = (f"Local {kind} dataset {p.name}: {total:,} rows; columns: {', '.join(colnames[:20])}"
            f"{' …' if len(colnames) > 20 else ''}.")
    rec = DatasetRecord(id=f"local/{slugify(title)}", name=title,
                        description=(description.strip() + " " + auto) if description and description.strip() else auto,
                        source="local", tags=[f"format:{fmt}"], configs=configs, local_path=str(p), notes=notes)
    return rec
