"""Uploads: a size limit with a clear message, and file names that cannot escape the uploads folder.

    >>> safe_filename("../../etc/passwd")
    'passwd'
    >>> path = save_upload(uploaded_file, store.home / "uploads")
"""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from pathlib import Path

from datatune_core.errors import UserError

MAX_UPLOAD_MB = 200  # keep equal to server.maxUploadSize in .streamlit/config.toml
DATASET_TYPES = ["csv", "tsv", "json", "jsonl", "parquet", "xlsx"]
_BAD = re.compile(r"[^A-Za-z0-9._ -]+")


def safe_filename(name: str, default: str = "upload") -> str:
    """A plain file name: no folders, no '..', no control or shell characters, at most 120 characters."""
    name = unicodedata.normalize("NFKC", str(name or ""))
    name = re.split(r"[\\/]", name)[-1]  # drop any folder part, Windows or POSIX
    name = _BAD.sub("_", name).strip(" .")
    name = re.sub(r"_+", "_", name)
    if not name or set(name) <= {"_", "."}:
        name = default
    stem, dot, ext = name.rpartition(".")
    if dot and len(ext) <= 10:
        return stem[: 120 - len(ext) - 1] + "." + ext
    return name[:120]


def check_upload(name: str, size_bytes: int, max_mb: int = MAX_UPLOAD_MB,
                 allowed: list[str] | None = None) -> None:
    """Raise UserError (with what to do) for a file that is too large or of a type we cannot read."""
    if size_bytes > max_mb * 1024 * 1024:
        raise UserError(f"{safe_filename(name)} is {size_bytes / 1024 / 1024:.1f} MB; uploads are limited to "
                        f"{max_mb} MB. Upload a smaller sample, or register the file from the command line with "
                        "`datatune catalog add PATH` (no size limit).")
    if size_bytes == 0:
        raise UserError(f"{safe_filename(name)} is empty. Choose a file with rows in it.")
    if allowed:
        ext = safe_filename(name).rsplit(".", 1)[-1].lower() if "." in name else ""
        if ext not in allowed:
            raise UserError(f"{safe_filename(name)}: files of type '.{ext}' cannot be read. "
                            f"Use one of: {', '.join('.' + a for a in allowed)}.")


_MAGIC = {b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image",
          b"%PDF": "a PDF document", b"PK\x03\x04": "a ZIP archive (or an Office file)", b"PAR1": "a Parquet file",
          b"\x1f\x8b": "a gzip archive", b"SQLite format": "an SQLite database"}


def _what(data: bytes) -> str | None:
    for magic, what in _MAGIC.items():
        if data.startswith(magic):
            return what
    return None


def sniff_content(name: str, data: bytes) -> None:
    """Raise UserError when the content does not match the file's type: the type found, the line, the fix."""
    fname = safe_filename(name)
    ext = fname.rsplit(".", 1)[-1].lower() if "." in fname else ""
    found = _what(data[:16])
    if ext == "parquet":
        if not data.startswith(b"PAR1"):
            raise UserError(f"{fname} is not a Parquet file{f' (it is {found})' if found else ''}. Export it again "
                            "as Parquet, or upload it with its real file type.")
        return
    if ext == "xlsx":
        if not data.startswith(b"PK\x03\x04"):
            raise UserError(f"{fname} is not an Excel workbook{f' (it is {found})' if found else ''}. Save it "
                            "again as .xlsx from your spreadsheet program, or upload a CSV.")
        return
    if found or b"\x00" in data[:4096]:
        raise UserError(f"{fname} is {found or 'a binary file'}, not a {ext.upper()} text file. Upload the data "
                        f"file itself (CSV, TSV, JSON, JSON Lines, Parquet or Excel).")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise UserError(f"{fname} is not UTF-8 text (line {line}). Save it again as UTF-8 (most spreadsheet "
                        "programs offer 'CSV UTF-8'), then upload it.") from e
    if ext in ("csv", "tsv"):
        _check_delimited(fname, text, "\t" if ext == "tsv" else ",")
    elif ext == "jsonl":
        for i, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    json.loads(line)
                except json.JSONDecodeError as e:
                    raise UserError(f"{fname}, line {i}: not valid JSON ({e.msg}). Each line must hold one JSON "
                                    "object, e.g. {\"input\": \"...\", \"output\": \"...\"}.") from e
    elif ext == "json":
        try:
            json.loads(text)
        except json.JSONDecodeError as e:
            raise UserError(f"{fname}, line {e.lineno}: not valid JSON ({e.msg}). Fix that line, or save the "
                            "rows as JSON Lines (one object per line).") from e


def _check_delimited(fname: str, text: str, sep: str) -> None:
    """Unclosed quotes and rows with a different number of fields than the header, with the line to fix."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=True)
    header: list[str] | None = None
    try:
        for row in reader:
            if not row or all(not c.strip() for c in row):
                continue
            if header is None:
                header = row
                if len(header) < 2 and sep == ",":
                    raise UserError(f"{fname}: the first line has a single column ({header[0][:40]!r}). A dataset "
                                    "needs at least an input and an output column, separated by commas.")
                continue
            if len(row) != len(header):
                raise UserError(f"{fname}, line {reader.line_num}: {len(row)} fields, but the header has "
                                f"{len(header)}. Put quotes around values that contain '{sep.strip() or 'tab'}', "
                                "or fix the row, then upload again.")
    except csv.Error as e:
        raise UserError(f"{fname}, line {reader.line_num}: {e} (often an unclosed quote). Close the quote or "
                        "remove it, then upload again.") from e
    if header is None:
        raise UserError(f"{fname} has no rows. Choose a file with a header line and rows.")


def save_upload(uploaded, dest_dir: Path | str, max_mb: int = MAX_UPLOAD_MB,
                allowed: list[str] | None = None) -> Path:
    """Write a Streamlit UploadedFile under `dest_dir` with a sanitized, non-clobbering name."""
    data = uploaded.getvalue()
    check_upload(uploaded.name, len(data), max_mb, allowed)
    sniff_content(uploaded.name, data)
    dest = Path(dest_dir).resolve()
    dest.mkdir(parents=True, exist_ok=True)
    name = safe_filename(uploaded.name)
    target = dest / name
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    n = 1
    while target.exists():
        n += 1
        target = dest / (f"{stem}-{n}.{ext}" if ext else f"{stem}-{n}")
    if target.resolve().parent != dest:  # belt and braces: never write outside the uploads folder
        raise UserError(f"Refusing the file name {uploaded.name!r}; rename the file and upload it again.")
    target.write_bytes(data)
    return target
