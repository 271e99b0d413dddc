"""Text normalisation shared by every stage: one `normalize_text` and one `text_hash` (row identity, leakage,
duplicates, test-set membership all compare texts the same way).

    >>> normalize_text("  Hello,   World! ")
    'hello, world'
    >>> text_hash("Hello world") == text_hash("hello   WORLD.")
    True
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

_PUNCT_EDGES = re.compile(r"^[\W_]+|[\W_]+$", re.UNICODE)
_WS = re.compile(r"\s+", re.UNICODE)


def normalize_text(s: str) -> str:
    """NFKC, casefold, collapse whitespace, strip punctuation at both ends."""
    s = unicodedata.normalize("NFKC", s or "").casefold()
    s = _WS.sub(" ", s).strip()
    return _PUNCT_EDGES.sub("", s).strip()


def text_hash(s: str) -> str:
    """A stable hash of `normalize_text(s)` (sha1 hex) used by all leakage guards."""
    return hashlib.sha1(normalize_text(s).encode("utf-8")).hexdigest()
