"""Turning the Hugging Face clients online for one call, and plain sentences for what the Hub answered.

`huggingface_hub` and `datasets` read HF_HUB_OFFLINE, HF_ENDPOINT and their timeouts once, at import, and DataTune
imports them offline (config.py). `online()` sets them for the duration of one Hub call (search, a row stream, a
push) from the environment as it is *now* - HF_ENDPOINT (a mirror, or the scripted test Hub), DATATUNE_HUB_TIMEOUT
(seconds per request, default 10) - bounds the streaming retries (`datasets` would otherwise retry a lost shard 20
times, up to 60 s apart), and restores the previous values when the last concurrent user leaves (threads share
these process-wide values, so overlapping calls keep them online until all are done).

`hub_message(error, what, repo_id)` turns a client error into one sentence naming the fix (no class names, no codes).

    >>> with online():
    ...     HfApi().list_datasets(search="imdb", limit=5)
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

DEFAULT_ENDPOINT = "https://huggingface.co"
STREAM_RETRIES = 1  # datasets' attempts per shard read on top of huggingface_hub's own 5 retries (its default: 20)
STREAM_RETRY_S = 1


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def timeout_s() -> float:
    try:
        return max(0.5, float(os.environ.get("DATATUNE_HUB_TIMEOUT") or 10))
    except ValueError:
        return 10.0


def _settings(ep: str, t: float) -> dict[tuple[Any, str], Any]:
    import datasets.config as dc
    import huggingface_hub.constants as hc

    return {(hc, "HF_HUB_OFFLINE"): False, (hc, "ENDPOINT"): ep,
            (hc, "HUGGINGFACE_CO_URL_TEMPLATE"): ep + "/{repo_id}/resolve/{revision}/{filename}",
            (hc, "HF_HUB_ETAG_TIMEOUT"): t, (hc, "HF_HUB_DOWNLOAD_TIMEOUT"): t,
            (dc, "HF_HUB_OFFLINE"): False, (dc, "HF_DATASETS_OFFLINE"): False, (dc, "HF_ENDPOINT"): ep,
            (dc, "HUB_DATASETS_URL"): ep + "/datasets/{repo_id}/resolve/{revision}/{path}",
            (dc, "STREAMING_READ_MAX_RETRIES"): STREAM_RETRIES,
            (dc, "STREAMING_READ_RETRY_INTERVAL"): STREAM_RETRY_S,
            (dc, "STREAMING_READ_SERVER_UNAVAILABLE_RETRY_INTERVAL"): STREAM_RETRY_S,
            (dc, "STREAMING_READ_RATE_LIMIT_RETRY_INTERVAL"): STREAM_RETRY_S}


_LOCK = threading.Lock()
_ACTIVE = {"n": 0, "saved": {}, "env": {}}  # nested / concurrent uses: the first sets, the last restores


@contextmanager
def online() -> Iterator[None]:
    """The Hub clients online against `endpoint()` with `timeout_s()`, for the duration of the block."""
    wanted = _settings(endpoint(), timeout_s())
    with _LOCK:
        if _ACTIVE["n"] == 0:
            _ACTIVE["saved"] = {k: getattr(k[0], k[1], None) for k in wanted}
            _ACTIVE["env"] = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
        _ACTIVE["n"] += 1
        for (mod, name), value in wanted.items():
            setattr(mod, name, value)
        os.environ.update({"HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0"})
    try:
        yield
    finally:
        with _LOCK:
            _ACTIVE["n"] -= 1
            if _ACTIVE["n"] == 0:
                for (mod, name), value in _ACTIVE["saved"].items():
                    setattr(mod, name, value)
                for k, v in _ACTIVE["env"].items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v


def _status(e: BaseException) -> int | None:
    for x in (e, e.__cause__, e.__context__):
        resp = getattr(x, "response", None)
        code = getattr(resp, "status_code", None)
        if isinstance(code, int):
            return code
    return None


def _chain(e: BaseException) -> list[BaseException]:
    out, x = [], e
    while x is not None and len(out) < 8:
        out.append(x)
        x = x.__cause__ or x.__context__
    return out


def _has_token() -> bool:
    if os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN"):
        return True
    try:
        from huggingface_hub import get_token

        return bool(get_token())
    except Exception:
        return False


def hub_message(e: BaseException, what: str, repo_id: str | None = None, kind: str = "dataset") -> str:
    """One plain sentence for a failed Hub call: what failed, why, and the fix. `what`: "search the Hub", ..."""
    from huggingface_hub import errors as he

    name = f" {repo_id!r}" if repo_id else ""
    chain = _chain(e)
    code = next((c for c in (_status(x) for x in chain) if c is not None), None)
    kinds = tuple(type(x).__name__ for x in chain)
    missing = [x for x in chain if type(x).__name__ == "DatasetNotFoundError"]  # datasets' own wrapper
    if any(isinstance(x, he.GatedRepoError) for x in chain) or (missing and "gated" in str(missing[0])):
        return (f"The {kind}{name} is gated: its authors must grant you access first. Request access on its Hub "
                "page, then set HF_TOKEN to a token of that account - or pick another candidate.")
    if code == 401 and _has_token():
        return ("The Hub refused the token (invalid or expired). Create a new token at "
                "huggingface.co/settings/tokens and set HF_TOKEN to it.")
    if any(isinstance(x, he.RevisionNotFoundError) for x in chain):
        return f"The Hub has no such revision of{name}; use its main branch."
    if any(isinstance(x, he.RemoteEntryNotFoundError) for x in chain):
        return f"A file of{name} is missing on the Hub (it may have been moved); try again later or pick another."
    if any(isinstance(x, he.RepositoryNotFoundError) for x in chain) or code in (401, 404) or missing:
        return (f"The Hub has no {kind}{name} (renamed, deleted or private). Check the name; for a private one "
                "set HF_TOKEN to a token that can read it.")
    if code == 403:
        return (f"The Hub refused access to{name or ' this repo'} with this token. Use a token with the needed "
                "rights (write, to push) for that account or organization.")
    if code == 429:
        return f"The Hub is rate-limiting requests, so DataTune could not {what}. Wait a minute and try again."
    if code is not None and code >= 500:
        return f"The Hub had a server error ({code}), so DataTune could not {what}. Try again in a few minutes."
    if any("Timeout" in k for k in kinds) or any(isinstance(x, TimeoutError) for x in chain):
        return (f"The Hub did not answer within {timeout_s():g} s, so DataTune could not {what}. Check the "
                "connection, or raise DATATUNE_HUB_TIMEOUT.")
    bad_card = next((x for x in chain if "Invalid metadata in README.md" in str(x)), None)
    if bad_card is not None:
        return (f"The Hub refused the card (README.md) of{name}: {' '.join(str(bad_card).split()[4:])[:200]} "
                "Fix its YAML header and push again.")
    if any(isinstance(x, (json.JSONDecodeError, UnicodeDecodeError)) for x in chain) or \
            any("Malformed" in str(x) or "JSON" in str(x) for x in chain):
        return (f"The Hub's answer was not readable, so DataTune could not {what}. A proxy may be in the way; "
                "try again, or check HF_ENDPOINT.")
    if any(isinstance(x, (ConnectionError, OSError)) for x in chain) or any("Connect" in k for k in kinds):
        return (f"Could not reach the Hub at {endpoint()}, so DataTune could not {what}. Check the network (and "
                "HF_ENDPOINT), or turn the Hub off (DATATUNE_HUB_ONLINE=0) and use the bundled catalogs.")
    return f"DataTune could not {what}{name and ' for' + name}: {str(e).strip()[:200] or 'no details'}."
