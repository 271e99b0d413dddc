"""Hugging Face Hub access (online only): dataset search -> `DatasetRecord`s, rows via streaming.

Everything here is behind `settings.hub_online` (env DATATUNE_HUB_ONLINE=1); offline (the default) every entry
point raises a `UserError` that says how to enable it. Tests never call the Hub.

    >>> from datatune_core.catalog.hub import search_hub
    >>> search_hub("sarcasm detection", limit=5)   # only with DATATUNE_HUB_ONLINE=1 and network access
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from datatune_core.catalog.records import ConfigInfo, DatasetRecord
from datatune_core.config import load_settings
from datatune_core.errors import UserError


def require_online() -> None:
    if not load_settings().hub_online:
        raise UserError("The Hugging Face Hub is off (offline mode). Set DATATUNE_HUB_ONLINE=1 (and make sure the "
                        "machine can reach huggingface.co) to search the Hub or stream its rows; bundled catalogs "
                        "and local files work offline.")


def _online_env() -> None:
    for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ[k] = "0"


def search_hub(query: str, limit: int = 20) -> list[DatasetRecord]:
    """Search the Hub for datasets (name/description match), newest metadata."""
    require_online()
    _online_env()
    from huggingface_hub import HfApi

    try:
        infos = list(HfApi().list_datasets(search=query, limit=limit, full=True))
    except Exception as e:
        raise UserError(f"Hub search failed ({type(e).__name__}: {str(e)[:200]}). Check the network, or turn the "
                        "Hub off (DATATUNE_HUB_ONLINE=0) and use the bundled catalogs.") from e
    out = []
    for info in infos:
        card = getattr(info, "card_data", None) or {}
        desc = getattr(info, "description", None) or (card.get("pretty_name") if isinstance(card, dict) else None)
        tags = [t for t in (getattr(info, "tags", None) or []) if not t.startswith(("license:", "language:"))]
        out.append(DatasetRecord(id=info.id, name=info.id, description=desc or f"Hub dataset {info.id}",
                                 source="hub", tags=tags, downloads=getattr(info, "downloads", None),
                                 configs=[ConfigInfo(name="default")]))
    return out


def iter_hub_rows(record: DatasetRecord, config: str | None = None, limit: int | None = None,
                  offset: int = 0) -> Iterator[tuple[str, dict]]:
    """Stream rows of a Hub dataset's train split (or its first split) with `datasets` streaming."""
    require_online()
    _online_env()
    import datasets

    try:
        dd = datasets.load_dataset(record.id, None if config in (None, "default") else config, streaming=True)
        split = "train" if "train" in dd else next(iter(dd))
        ds = dd[split]
    except Exception as e:
        raise UserError(f"Could not open {record.id!r} on the Hub ({type(e).__name__}: {str(e)[:200]}). The dataset "
                        "may be gated, script-based or renamed; pick another candidate.") from e
    n = 0
    for i, row in enumerate(ds):
        if i < offset:
            continue
        if limit is not None and n >= limit:
            return
        yield f"{split}:{i}", dict(row)
        n += 1
