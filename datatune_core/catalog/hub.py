"""Hugging Face Hub access (online only): dataset search -> `DatasetRecord`s, rows via streaming.

Everything here is behind `settings.hub_online` (env DATATUNE_HUB_ONLINE=1); offline (the default) every entry
point raises a `UserError` that says how to enable it. Tests run it against a scripted Hub on 127.0.0.1
(tests/fakes/hub_server.py, via HF_ENDPOINT); failures become one plain sentence (`hub_session.hub_message`).

    >>> from datatune_core.catalog.hub import search_hub
    >>> search_hub("sarcasm detection", limit=5)   # only with DATATUNE_HUB_ONLINE=1 and network access
"""

from __future__ import annotations

from collections.abc import Iterator

from datatune_core.catalog.records import ConfigInfo, DatasetRecord
from datatune_core.config import load_settings
from datatune_core.errors import UserError


def require_online() -> None:
    if not load_settings().hub_online:
        raise UserError("The Hugging Face Hub is off (offline mode). Set DATATUNE_HUB_ONLINE=1 (and make sure the "
                        "machine can reach huggingface.co) to search the Hub or stream its rows; bundled catalogs "
                        "and local files work offline.")


STOP = {"about", "after", "also", "based", "data", "dataset", "datasets", "each", "from", "given", "have", "into",
        "model", "should", "that", "their", "them", "then", "there", "these", "this", "train", "using", "want",
        "what", "when", "which", "whether", "with", "would", "your", "task", "text", "texts", "label", "labels",
        "classify", "detect", "predict", "identify", "determine", "decide", "generate", "answer", "write", "tell",
        "sentence", "sentences", "input", "output", "example", "examples", "following", "given", "correct"}


def search_terms(query: str, n: int = 3) -> list[str]:
    """A few single words for the Hub's search, which matches text inside dataset ids (not descriptions)."""
    import re

    words = [w for w in re.findall(r"[a-z][a-z0-9-]{3,}", query.lower()) if w not in STOP]
    seen: list[str] = []
    for w in sorted(words, key=lambda w: (-len(w), words.index(w))):
        if w not in seen:
            seen.append(w)
    return seen[:n] or ([query.strip()[:40]] if query.strip() else [])


def _record(info: object) -> DatasetRecord:
    card = getattr(info, "card_data", None)
    card = card.to_dict() if hasattr(card, "to_dict") else (card if isinstance(card, dict) else {})
    desc = getattr(info, "description", None) or card.get("pretty_name")
    tags = [t for t in (getattr(info, "tags", None) or []) if not t.startswith(("license:", "language:"))]
    langs = card.get("language") or []
    names = [c.get("config_name") for c in card.get("configs") or [] if isinstance(c, dict) and c.get("config_name")]
    notes = []
    if getattr(info, "gated", False):
        notes.append("Gated on the Hub: request access on its page (and set HF_TOKEN) before its rows can be read.")
    rid = getattr(info, "id")
    return DatasetRecord(id=rid, name=card.get("pretty_name") or rid, description=desc or f"Hub dataset {rid}",
                         source="hub", tags=tags, languages=[langs] if isinstance(langs, str) else list(langs),
                         license=card.get("license") if isinstance(card.get("license"), str) else None,
                         downloads=getattr(info, "downloads", None),
                         configs=[ConfigInfo(name=n) for n in names] or [ConfigInfo(name="default")], notes=notes)


def search_hub(query: str, limit: int = 20) -> list[DatasetRecord]:
    """Search the Hub for datasets whose id contains the query's key words (most downloaded first)."""
    require_online()
    from huggingface_hub import HfApi

    from datatune_core.catalog.hub_session import hub_message, online

    found: dict[str, DatasetRecord] = {}
    try:
        with online():
            for term in search_terms(query):
                for info in HfApi().list_datasets(search=term, limit=limit, full=True, sort="downloads"):
                    found.setdefault(info.id, _record(info))
    except Exception as e:
        raise UserError(hub_message(e, "search the Hub")) from e
    return sorted(found.values(), key=lambda r: -(r.downloads or 0))[:limit]


def iter_hub_rows(record: DatasetRecord, config: str | None = None, limit: int | None = None,
                  offset: int = 0) -> Iterator[tuple[str, dict]]:
    """Stream rows of a Hub dataset's train split (or its first split) with `datasets` streaming."""
    require_online()
    import datasets

    from datatune_core.catalog.hub_session import hub_message, online

    what = f"read the rows of {record.id}"
    with online():
        try:
            dd = datasets.load_dataset(record.id, None if config in (None, "default") else config, streaming=True)
            split = "train" if "train" in dd else next(iter(dd))
            ds = dd[split]
        except ValueError as e:
            if "not found" in str(e) and config:
                names = ", ".join(c.name for c in record.configs) or "none listed"
                raise UserError(f"The Hub dataset {record.id!r} has no config {config!r}. Its configs: {names}; "
                                "pick one of those.") from e
            raise UserError(hub_message(e, what, record.id)) from e
        except Exception as e:
            raise UserError(hub_message(e, what, record.id)) from e
        n, it = 0, enumerate(ds)
        while limit is None or n < limit:
            try:
                i, row = next(it)
            except StopIteration:
                return
            except Exception as e:  # a shard that fails half-way: the rows so far stay with the caller
                raise UserError(hub_message(e, what, record.id)) from e
            if i < offset:
                continue
            yield f"{split}:{i}", dict(row)
            n += 1
