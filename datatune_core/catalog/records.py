"""Dataset catalogs: one `DatasetRecord` schema for bundled JSONL catalogs, local files and (online) the Hub.

In: catalog JSONL files (`.jsonl` or `.jsonl.gz`, one record per line; only `id`, `name`, `description` are
required), local data files (see `localfiles.py`), and, behind `settings.hub_online`, the Hugging Face Hub.
Out: `DatasetRecord`s (with `ConfigInfo` per config: columns, splits, sample rows, where the rows are) and
row streams `(row_id, row)` with stable ids.

Bad records (unparsable line, missing id/description, duplicate ids) are reported as `CatalogProblem`s with file
and line; the rest loads. A dataset id appears once across all loaded catalogs (the first catalog wins).

    >>> from datatune_core.catalog.records import load_catalogs, default_catalog_paths, load_rows
    >>> cat = load_catalogs(default_catalog_paths())          # bundled HF metadata (+ ../shared, + user catalogs)
    >>> rec = cat.by_id()["bigbench/temporal_sequences"]
    >>> next(load_rows(rec, limit=1))                          # ('default:0', {'input': ..., 'choices': ...})
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from datatune_core.config import catalog_dir, default_home, load_settings
from datatune_core.errors import UserError

PACKAGE_DATA = Path(__file__).resolve().parent.parent / "data"
BUNDLED_HF_CATALOG = PACKAGE_DATA / "hf_catalog.jsonl.gz"
USER_CATALOG_NAME = "local.jsonl"


@dataclass
class ConfigInfo:
    """One configuration (subset) of a dataset."""

    name: str
    description: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    splits: dict[str, int] = field(default_factory=dict)
    sample_rows: list[dict] = field(default_factory=list)
    rows_path: str | None = None  # relative to the catalog file's folder, or absolute
    full_size: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ConfigInfo":
        if not isinstance(d, dict) or not d.get("name"):
            raise ValueError("a config needs a 'name'")
        return cls(name=str(d["name"]), description=d.get("description"),
                   columns={str(k): str(v) for k, v in (d.get("columns") or {}).items()},
                   splits={str(k): int(v) for k, v in (d.get("splits") or {}).items() if v is not None},
                   sample_rows=[r for r in (d.get("sample_rows") or []) if isinstance(r, dict)],
                   rows_path=d.get("rows_path"), full_size=d.get("full_size"))


@dataclass
class DatasetRecord:
    """A dataset as the retriever, the reranker and the transform stage see it."""

    id: str
    name: str
    description: str
    source: str = "unknown"  # huggingface | bigbench | local | hub
    tags: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    license: str | None = None
    homepage: str | None = None
    downloads: int | None = None
    family: str | None = None  # leakage group (BIG-bench task family)
    configs: list[ConfigInfo] = field(default_factory=list)
    catalog_path: str | None = None  # the catalog file the record came from
    local_path: str | None = None  # the local data file/folder (source == "local")
    notes: list[str] = field(default_factory=list)  # what profiling noticed (encoding fallback, ragged rows…)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["configs"] = [c.to_dict() for c in self.configs]
        return d

    @classmethod
    def from_dict(cls, d: dict, catalog_path: str | None = None) -> "DatasetRecord":
        """Build a record from a catalog line; ValueError names what is missing."""
        if not isinstance(d, dict):
            raise ValueError("the line is not a JSON object")
        rid = d.get("id")
        if not isinstance(rid, str) or not rid.strip():
            raise ValueError("missing 'id'")
        desc = d.get("description")
        if not isinstance(desc, str) or not desc.strip():
            raise ValueError(f"record {rid!r} has no 'description'")
        name = d.get("name") or rid
        tags = d.get("tags") or []
        langs = d.get("languages") or []
        configs = [ConfigInfo.from_dict(c) for c in (d.get("configs") or [])]
        downloads = d.get("downloads")
        return cls(id=rid.strip(), name=str(name), description=desc.strip(), source=str(d.get("source") or "unknown"),
                   tags=[str(t) for t in tags if str(t).strip()] if isinstance(tags, list) else [str(tags)],
                   languages=[str(x) for x in langs] if isinstance(langs, list) else [str(langs)],
                   license=d.get("license"), homepage=d.get("homepage"),
                   downloads=int(downloads) if isinstance(downloads, (int, float)) else None,
                   family=d.get("family"), configs=configs,
                   catalog_path=catalog_path or d.get("catalog_path"), local_path=d.get("local_path"),
                   notes=[str(x) for x in d.get("notes") or []])

    def config(self, name: str | None = None) -> ConfigInfo | None:
        """The named config, or the first one when name is None; None if the record has no such config."""
        if not self.configs:
            return None
        if name is None:
            return self.configs[0]
        return next((c for c in self.configs if c.name == name), None)

    def content_hash(self) -> str:
        """Hash of everything but where the record was loaded from (for caches keyed by content)."""
        d = self.to_dict()
        d.pop("catalog_path", None)
        return hashlib.sha256(json.dumps(d, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()[:24]

    def has_rows(self) -> bool:
        return bool(self.local_path) or any(c.rows_path for c in self.configs)


@dataclass
class CatalogProblem:
    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}" if self.line else f"{self.path}: {self.message}"


@dataclass
class CatalogLoad:
    records: list[DatasetRecord] = field(default_factory=list)
    problems: list[CatalogProblem] = field(default_factory=list)

    def by_id(self) -> dict[str, DatasetRecord]:
        return {r.id: r for r in self.records}


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8-sig", errors="replace")


def load_catalog(path: Path | str) -> CatalogLoad:
    """Parse one catalog JSONL(.gz) file; bad lines become problems with their line number."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"Catalog {p} does not exist. Pass a .jsonl or .jsonl.gz file with one dataset per line "
                        "(keys id, name, description).")
    out = CatalogLoad()
    seen: dict[str, int] = {}
    try:
        with _open_text(p) as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    d = json.loads(line)
                except json.JSONDecodeError as e:
                    out.problems.append(CatalogProblem(str(p), n, f"not valid JSON ({e.msg}); line skipped"))
                    continue
                try:
                    rec = DatasetRecord.from_dict(d, catalog_path=str(p.resolve()))
                except (ValueError, TypeError) as e:
                    out.problems.append(CatalogProblem(str(p), n, f"{e}; line skipped"))
                    continue
                if rec.id in seen:
                    out.problems.append(CatalogProblem(str(p), n, f"duplicate id {rec.id!r} (first on line "
                                                                  f"{seen[rec.id]}); line skipped"))
                    continue
                seen[rec.id] = n
                out.records.append(rec)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        out.problems.append(CatalogProblem(str(p), None, f"could not be read to the end ({e}); "
                                                         f"{len(out.records)} records loaded"))
    return out


def load_catalogs(paths: Iterable[Path | str] | None = None) -> CatalogLoad:
    """Load several catalogs; a dataset id found again in a later catalog is reported and skipped."""
    paths = default_catalog_paths() if paths is None else list(paths)
    out = CatalogLoad()
    seen: dict[str, str] = {}
    for path in paths:
        one = load_catalog(path)
        out.problems.extend(one.problems)
        for r in one.records:
            if r.id in seen:
                if seen[r.id] != r.catalog_path:
                    out.problems.append(CatalogProblem(str(path), None, f"id {r.id!r} is already in {seen[r.id]}; "
                                                                       "kept the first"))
                continue
            seen[r.id] = r.catalog_path or str(path)
            out.records.append(r)
    return out


def user_catalog_dir(home: Path | str | None = None) -> Path:
    return Path(home or load_settings().home) / "catalogs"


def default_catalog_paths(home: Path | str | None = None) -> list[Path]:
    """Bundled HF metadata, the ../shared BIG-bench catalog (when present), then the user's catalogs."""
    paths: list[Path] = []
    if BUNDLED_HF_CATALOG.is_file():
        paths.append(BUNDLED_HF_CATALOG)
    shared = catalog_dir()
    if shared is not None:
        bb = shared / "bigbench_catalog.jsonl"
        if bb.is_file():
            paths.append(bb)
        if not BUNDLED_HF_CATALOG.is_file() and (shared / "hf_catalog.jsonl").is_file():
            paths.append(shared / "hf_catalog.jsonl")
    udir = user_catalog_dir(home)
    if udir.is_dir():
        paths.extend(sorted(list(udir.glob("*.jsonl")) + list(udir.glob("*.jsonl.gz"))))
    return paths


# ----------------------------------------------------------------------------------------- rows
def _rows_file(record: DatasetRecord, cfg: ConfigInfo) -> Path:
    p = Path(cfg.rows_path or "")
    if not p.is_absolute() and record.catalog_path:
        p = Path(record.catalog_path).parent / p
    return p


def load_rows(record: DatasetRecord, config: str | None = None, limit: int | None = None,
              offset: int = 0) -> Iterator[tuple[str, dict]]:
    """Yield `(row_id, row)` for a record's config: catalog rows files, local files, or the Hub when online.

    Row ids are stable across runs: `<config>:<position>` (local files: see `localfiles.iter_rows`).
    """
    cfg = record.config(config)
    if config is not None and cfg is None:
        names = ", ".join(c.name for c in record.configs) or "none"
        raise UserError(f"Dataset {record.id!r} has no config {config!r}. Its configs: {names}.")
    if limit is not None and limit <= 0:
        return iter(())
    if cfg is not None and cfg.rows_path:
        return _iter_jsonl_rows(record, cfg, limit, offset)
    if record.local_path:
        from datatune_core.catalog.localfiles import iter_rows

        return iter_rows(record.local_path, cfg.name if cfg else None, limit=limit, offset=offset)
    if record.source in ("huggingface", "hub"):
        from datatune_core.catalog.hub import iter_hub_rows

        return iter_hub_rows(record, cfg.name if cfg else None, limit=limit, offset=offset)
    raise UserError(f"Dataset {record.id!r} has no rows available (metadata only). Pick a dataset with rows, "
                    "add a local file with `datatune catalog add PATH`, or enable the Hub (DATATUNE_HUB_ONLINE=1).")


def _iter_jsonl_rows(record: DatasetRecord, cfg: ConfigInfo, limit: int | None,
                     offset: int) -> Iterator[tuple[str, dict]]:
    path = _rows_file(record, cfg)
    if not path.is_file():
        raise UserError(f"Rows file {path} of {record.id!r} (config {cfg.name!r}) is missing. "
                        "Check that the shared data folder is complete (DATATUNE_SHARED).")
    yielded = 0
    with _open_text(path) as fh:
        for i, line in enumerate(fh):
            if i < offset or not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            yield f"{cfg.name}:{i}", row
            yielded += 1
            if limit is not None and yielded >= limit:
                return


def count_rows(record: DatasetRecord, config: str | None = None) -> int | None:
    """Number of rows available for a config (None when unknown)."""
    cfg = record.config(config)
    if cfg is None:
        return None
    if cfg.splits:
        return sum(cfg.splits.values())
    if cfg.rows_path:
        return sum(1 for _ in _iter_jsonl_rows(record, cfg, None, 0))
    return cfg.full_size


# -------------------------------------------------------------------------------- local datasets
def slugify(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", text.strip()).strip("-._").lower()
    return s[:80] or "dataset"


def profile_file(path: Path | str, description: str | None = None, name: str | None = None) -> DatasetRecord:
    """Profile a local CSV/TSV/JSON/JSONL/Parquet/Excel file or `save_to_disk` folder into a record."""
    from datatune_core.catalog.localfiles import profile_path

    return profile_path(path, description=description, name=name)


def add_local_dataset(store_home: Path | str | None, path: Path | str, name: str | None = None,
                      description: str | None = None) -> DatasetRecord:
    """Profile a local file and register it in the user catalog (DATATUNE_HOME/catalogs/local.jsonl).

    Adding the same file again (or another file under the same name) replaces the earlier entry.
    """
    rec = profile_file(path, description=description, name=name)
    cat = user_catalog_dir(store_home or default_home())
    cat.mkdir(parents=True, exist_ok=True)
    target = cat / USER_CATALOG_NAME
    rec.catalog_path = str(target.resolve())
    kept: list[str] = []
    if target.is_file():
        for line in target.read_text(encoding="utf-8").splitlines():
            try:
                d = json.loads(line)
            except json.JSONDecodeError:
                continue
            if d.get("id") != rec.id and d.get("local_path") != rec.local_path:
                kept.append(line)
    d = rec.to_dict()
    d.pop("catalog_path", None)
    kept.append(json.dumps(d, ensure_ascii=False, default=str))
    tmp = target.with_suffix(".tmp")
    tmp.write_text("\n".join(kept) + "\n", encoding="utf-8")
    tmp.replace(target)
    return rec


def add_catalog_file(store_home: Path | str | None, path: Path | str) -> tuple[Path, CatalogLoad]:
    """Copy a catalog JSONL(.gz) into DATATUNE_HOME/catalogs/ so default searches include it."""
    src = Path(path).expanduser()
    loaded = load_catalog(src)
    if not loaded.records:
        raise UserError(f"{src} has no valid records ({len(loaded.problems)} problems, first: "
                        f"{loaded.problems[0] if loaded.problems else 'empty file'}). Each line needs id, name, "
                        "description.")
    cat = user_catalog_dir(store_home or default_home())
    cat.mkdir(parents=True, exist_ok=True)
    name = src.name if src.name.endswith((".jsonl", ".jsonl.gz")) else src.name + ".jsonl"
    if name == USER_CATALOG_NAME:
        name = "imported-" + name
    dest = cat / name
    with open(dest, "w", encoding="utf-8") as fh:
        for r in loaded.records:
            d = r.to_dict()
            d.pop("catalog_path", None)
            for c in d["configs"]:  # keep rows reachable from the new location
                if c.get("rows_path") and not Path(c["rows_path"]).is_absolute():
                    c["rows_path"] = str((src.resolve().parent / c["rows_path"]).resolve())
            fh.write(json.dumps(d, ensure_ascii=False, default=str) + "\n")
    return dest, loaded


def describe_record(record: DatasetRecord, max_desc: int = 300) -> dict[str, Any]:
    """A flat summary (for tables)."""
    return {"id": record.id, "name": record.name, "source": record.source,
            "configs": len(record.configs), "rows": "yes" if record.has_rows() else "no",
            "description": record.description[:max_desc]}
