"""Uploads: a size limit with a clear message, and file names that cannot escape the uploads folder.

    >>> safe_filename("../../etc/passwd")
    'passwd'
    >>> path = save_upload(uploaded_file, store.home / "uploads")
"""

from __future__ import annotations

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


def save_upload(uploaded, dest_dir: Path | str, max_mb: int = MAX_UPLOAD_MB,
                allowed: list[str] | None = None) -> Path:
    """Write a Streamlit UploadedFile under `dest_dir` with a sanitized, non-clobbering name."""
    data = uploaded.getvalue()
    check_upload(uploaded.name, len(data), max_mb, allowed)
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
