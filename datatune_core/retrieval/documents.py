"""What a catalog record is indexed as: the fields fed to BM25 and to the encoder (`IndexConfig`), each record's
document text and its sample-rows text."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from datatune_core.catalog.records import DatasetRecord
from datatune_core.retrieval.embeddings import EMBEDDERS


ALL_FIELDS = ("name", "description", "tags", "configs", "columns", "samples")
DEFAULT_BM25_FIELDS = ("name", "description", "tags", "configs", "columns")
DEFAULT_DENSE_FIELDS = ("name", "description", "tags")
_SKIP_TAG_PREFIXES = ("size_categories:", "arxiv:", "doi:", "annotations_creators:", "language_creators:",
                      "source_datasets:", "region:", "format:", "library:", "modality:")


FIELD_GROUPS = {  # the separately scored BM25 fields (field-aware scoring; weights in retrieve.FusionWeights)
    "name": ("name",), "tags": ("tags",), "description": ("description",), "columns": ("configs", "columns"),
    "samples": ("samples",)}


@dataclass
class IndexConfig:
    """What is indexed: the record fields fed to BM25 and to the dense encoder."""

    bm25_fields: tuple[str, ...] = DEFAULT_BM25_FIELDS
    dense_fields: tuple[str, ...] = DEFAULT_DENSE_FIELDS
    max_seq_length: int = 128  # MiniLM tokens per document (256 doubles the build time; see the README, "Dataset catalogs and retrieval")
    model: str = field(default_factory=lambda: os.environ.get("DATATUNE_EMBEDDER", "minilm"))  # EMBEDDERS key

    def __post_init__(self) -> None:
        self.bm25_fields, self.dense_fields = tuple(self.bm25_fields), tuple(self.dense_fields)
        if self.model not in EMBEDDERS:
            raise ValueError(f"Unknown embedder {self.model!r}; choose from {', '.join(EMBEDDERS)}.")
        bad = (set(self.bm25_fields) | set(self.dense_fields)) - set(ALL_FIELDS)
        if bad or not self.bm25_fields or not self.dense_fields:
            raise ValueError(f"Unknown or empty index fields {sorted(bad)}; choose from {ALL_FIELDS}.")

    def key(self) -> str:
        base = f"b={'+'.join(self.bm25_fields)};d={'+'.join(self.dense_fields)};L={self.max_seq_length}"
        return base if self.model == "minilm" else base + f";m={self.model}"


def _clean_tag(t: str) -> str | None:
    if t.startswith(_SKIP_TAG_PREFIXES):
        return None
    t = t.split(":", 1)[1] if ":" in t and not t.startswith("http") else t
    return t.replace("-", " ").replace("_", " ")


def doc_text(record: DatasetRecord, fields: Sequence[str]) -> str:
    """The text indexed for one record (fields in the given order)."""
    parts: list[str] = []
    for f in fields:
        if f == "name":
            nm = record.name if record.name == record.id else f"{record.name} ({record.id})"
            parts.append(re.sub(r"[_/]+", " ", nm))
        elif f == "description":
            parts.append(record.description[:1500])
        elif f == "tags":
            tags = [c for c in (_clean_tag(t) for t in record.tags[:30]) if c]
            if tags:
                parts.append("Tags: " + ", ".join(dict.fromkeys(tags)))
        elif f == "configs":
            cfg = [c.name.replace("_", " ") + (f": {c.description[:200]}" if c.description else "")
                   for c in record.configs[:12] if c.name not in ("default", "train")]
            if cfg:
                parts.append("Configs: " + "; ".join(cfg))
        elif f == "columns":
            cols = list(dict.fromkeys(k for c in record.configs for k in c.columns))[:50]
            if cols:
                parts.append("Columns: " + ", ".join(cols))
        elif f == "samples":
            vals: list[str] = []
            for c in record.configs[:2]:
                for row in c.sample_rows[:1]:
                    vals += [str(v)[:120] for v in row.values() if isinstance(v, (str, int, float))]
            if vals:
                parts.append("Example: " + " | ".join(vals)[:400])
        elif f == "rows":  # the sample rows as a user writes examples ("input -> output"), for the examples vector
            parts.append(sample_text(record))
    return "\n".join(p for p in parts if p)


def _row_line(row: dict) -> str:
    vals = [v if isinstance(v, str) else ", ".join(map(str, v)) if isinstance(v, list) else str(v)
            for v in row.values() if isinstance(v, (str, int, float, list))]
    vals = [" ".join(v.split())[:200] for v in vals if str(v).strip()]
    return " -> ".join(vals[:3])


def sample_text(record: DatasetRecord, max_rows: int = 3) -> str:
    """A record's sample rows as example lines ("value -> value"), the shape of a user's task examples."""
    lines: list[str] = []
    for c in record.configs[:4]:
        for row in c.sample_rows[:max_rows]:
            line = _row_line(row)
            if line and line not in lines:
                lines.append(line)
        if len(lines) >= max_rows:
            break
    return "\n".join(lines[:max_rows])[:900]
