"""What the scripted Hub stores: a repo (files, card metadata, access rule, the commits that arrived) and the
helpers tests use to write one (a parquet shard, a card with YAML metadata)."""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass, field
from typing import Any


def parquet_bytes(rows: list[dict]) -> bytes:
    """A parquet file holding `rows` (what a test serves as a shard)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    return buf.getvalue()


def card_text(meta: dict, body: str = "") -> str:
    """A repo card: YAML metadata between --- lines, then Markdown."""
    import yaml

    return f"---\n{yaml.safe_dump(meta, sort_keys=False)}---\n{body}\n"


def _git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    """One repo: its files, metadata, access rule and (for pushes) the commits that arrived."""

    repo_id: str
    repo_type: str = "dataset"
    files: dict[str, bytes] = field(default_factory=dict)
    private: bool = False
    gated: str | bool = False  # False, "auto" or "manual"
    granted: set[str] = field(default_factory=set)  # tokens allowed through the gate
    tags: list[str] = field(default_factory=list)
    downloads: int = 0
    description: str | None = None
    lfs: set[str] = field(default_factory=set)  # paths stored as LFS objects
    commits: list[dict] = field(default_factory=list)

    @property
    def sha(self) -> str:
        h = hashlib.sha1()
        for p in sorted(self.files):
            h.update(p.encode() + b"\0" + hashlib.sha1(self.files[p]).digest())
        return h.hexdigest()

    def card_data(self) -> dict:
        raw = self.files.get("README.md", b"").decode("utf-8", "replace")
        m = re.match(r"---\n(.*?)\n---", raw, re.S)
        if not m:
            return {}
        import yaml

        return yaml.safe_load(m.group(1)) or {}

    def entry(self, path: str) -> dict:
        data = self.files[path]
        e: dict[str, Any] = {"type": "file", "path": path, "size": len(data), "oid": _git_oid(data)}
        if path in self.lfs:
            e["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        return e

    def info(self, full: bool = True) -> dict:
        card = self.card_data()
        d: dict[str, Any] = {"_id": hashlib.md5(self.repo_id.encode()).hexdigest()[:24], "id": self.repo_id,
                             "author": self.repo_id.split("/")[0], "sha": self.sha, "private": self.private,
                             "gated": self.gated, "disabled": False, "downloads": self.downloads, "likes": 0,
                             "tags": self.tags, "createdAt": "2025-01-01T00:00:00.000Z",
                             "lastModified": "2025-06-01T00:00:00.000Z"}
        if self.description is not None:
            d["description"] = self.description
        if full:
            d["cardData"] = card
            d["siblings"] = [{"rfilename": p} for p in sorted(self.files)]
        return d
