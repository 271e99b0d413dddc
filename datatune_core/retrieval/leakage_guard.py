"""The retrieval side of the leakage guard: which catalog records an evaluation unit excludes (its task family, or rows
that are its test inputs). The rules are `datatune_core.leakage`'s; this module applies them to records and caches
each record's row hashes."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from datatune_core import leakage
from datatune_core.catalog.records import DatasetRecord, load_rows


ROW_SCAN_LIMIT = 20_000  # rows per record checked by the overlap guard


# ----------------------------------------------------------------------------------- leakage guard
@dataclass
class LeakageGuard:
    """What must not reach training data for one BIG-bench evaluation unit."""

    unit: str
    families: set[str]
    test_hashes: set[str]

    @classmethod
    def for_unit(cls, unit: str) -> "LeakageGuard":
        return cls(unit=unit, families=leakage.excluded_families(unit), test_hashes=leakage.unit_test_hashes(unit))

    def family_reason(self, record: DatasetRecord) -> str | None:
        fam = leakage.record_family(record)
        if fam and fam in self.families:
            return f"same task family as the evaluation task {self.unit!r} ({fam})"
        return None

    def overlap_reason(self, record: DatasetRecord) -> str | None:
        """Check the record's rows (every config) for values whose normalized hash is a test input."""
        if not record.has_rows() or not self.test_hashes:
            return None
        hits = [rid for rid, hs in record_row_hashes(record) if hs & self.test_hashes]
        if hits:
            return f"{len(hits)} row(s) overlap the test inputs of {self.unit!r} (e.g. {', '.join(hits[:3])})"
        return None


def _row_hashes(row: dict) -> frozenset[str]:
    """Exact hashes of every segment of the row's texts (leakage.row_hashes: stems before options lists,
    lines without "Q:" labels, ...), so a test input inside a reformatted value matches too."""
    return leakage.row_hashes(row)


_ROW_HASHES: dict[tuple[str, str], list[tuple[str, frozenset[str]]]] = {}


def record_row_hashes(record: DatasetRecord) -> list[tuple[str, frozenset[str]]]:
    """(row id, normalized hashes of its text values) for every row of every config, cached per record content in
    memory and in DATATUNE_HOME/index/rowhashes/ (catalog rows files only; local files are re-read)."""
    key = (record.id, record.content_hash())
    if key in _ROW_HASHES:
        return _ROW_HASHES[key]
    from datatune_core.retrieval.index import index_root

    disk = index_root() / "rowhashes" / f"{key[1]}-seg.json"  # -seg: segment hashes (leakage.py)  # JSON, never a pickle: files here are only data
    out: list[tuple[str, frozenset[str]]] | None = None
    if disk.is_file() and not record.local_path:  # local files can change under the same record
        try:
            out = [(str(rid), frozenset(hs)) for rid, hs in json.loads(disk.read_text(encoding="utf-8"))]
        except (OSError, ValueError, TypeError):
            out = None
    if out is None:
        out = []
        for cfg in [c.name for c in record.configs] or [None]:
            try:
                out += [(rid, _row_hashes(row)) for rid, row in load_rows(record, cfg, limit=ROW_SCAN_LIMIT)]
            except Exception:  # unreadable rows cannot leak; the transform stage reports them
                continue
        if not record.local_path:
            try:
                disk.parent.mkdir(parents=True, exist_ok=True)
                tmp = disk.with_suffix(f".tmp{os.getpid()}")
                tmp.write_text(json.dumps([[rid, sorted(hs)] for rid, hs in out]), encoding="utf-8")
                tmp.replace(disk)
            except OSError:
                pass
    _ROW_HASHES[key] = out
    return out


_GUARD_CACHE: dict[tuple[str, str, str], str | None] = {}


def _overlap_cached(guard: LeakageGuard, record: DatasetRecord) -> str | None:
    key = (guard.unit, record.id, record.content_hash())
    if key not in _GUARD_CACHE:
        _GUARD_CACHE[key] = guard.overlap_reason(record)
    return _GUARD_CACHE[key]
