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


# ----------------------------------------------------------------------------- near duplicates
# The one near-duplicate definition (validation drops near-duplicate rows, the quality profile reports their rate,
# the leakage guard refuses near copies of test inputs): two texts are near duplicates when the Jaccard similarity
# of their word shingles (the words of `normalize_text` and their bigrams) reaches a threshold. MinHash LSH
# (datasketch) proposes candidate pairs with a looser banding threshold; the exact Jaccard decides. Each caller
# passes its own threshold (see `transformation.validate.ValidationConfig` and `quality.report.QualityConfig`).
_WORD = re.compile(r"\w+", re.UNICODE)
NUM_PERM = 64  # MinHash permutations


def words(text: str | None) -> list[str]:
    """The `\\w+` words of `normalize_text(text)`."""
    return _WORD.findall(normalize_text(text or ""))


def word_shingles(tokens: list[str] | tuple[str, ...]) -> set[str]:
    """1- and 2-word shingles of a token list: each token and each adjacent pair ("a b")."""
    return set(tokens) | {f"{a} {b}" for a, b in zip(tokens, tokens[1:])}


def text_shingles(text: str | None) -> set[str]:
    """`word_shingles` of a text's `words`."""
    return word_shingles(words(text))


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def minhash(shingles: set[str], num_perm: int = NUM_PERM):
    """The MinHash (datasketch, seed 1) of a shingle set."""
    from datasketch import MinHash

    m = MinHash(num_perm=num_perm, seed=1)
    m.update_batch([s.encode("utf-8") for s in sorted(shingles)])
    return m


def minhashes(shingle_sets: list[set[str]], num_perm: int = NUM_PERM) -> list:
    """`minhash` of many shingle sets at once."""
    from datasketch import MinHash

    return MinHash.bulk([[s.encode("utf-8") for s in sh] for sh in shingle_sets], num_perm=num_perm, seed=1)


def lsh_threshold(threshold: float) -> float:
    """The LSH banding threshold: well below the exact one, so pairs near it are still found (then verified)."""
    return min(0.95, max(0.1, threshold - 0.25))


class NearDuplicates:
    """Texts added one by one; `match` finds an added text whose shingle Jaccard with the query is >= threshold."""

    def __init__(self, threshold: float, num_perm: int = NUM_PERM):
        from datasketch import MinHashLSH

        if not 0 < threshold <= 1:
            raise ValueError("A near-duplicate threshold is a Jaccard similarity in (0, 1].")
        self.threshold, self.num_perm = threshold, num_perm
        self.lsh = MinHashLSH(threshold=lsh_threshold(threshold), num_perm=num_perm)
        self.shingles: dict = {}

    def __len__(self) -> int:
        return len(self.shingles)

    def add(self, key, shingles: set[str], mh=None) -> None:
        if key in self.shingles or not shingles:
            return
        self.lsh.insert(key, mh if mh is not None else minhash(shingles, self.num_perm))
        self.shingles[key] = shingles

    def match(self, shingles: set[str], mh=None) -> tuple[object, float] | None:
        """(key, Jaccard) of the most similar added text at or above the threshold, else None."""
        if not shingles or not self.shingles:
            return None
        best = None
        for key in self.lsh.query(mh if mh is not None else minhash(shingles, self.num_perm)):
            j = jaccard(shingles, self.shingles[key])
            if j >= self.threshold and (best is None or j > best[1]):
                best = (key, j)
        return best


def near_duplicate_flags(shingle_sets: list[set[str]], threshold: float, num_perm: int = NUM_PERM,
                         mh: list | None = None) -> list[bool]:
    """For each shingle set: does another one in the list reach Jaccard >= threshold? (LSH candidates, exact check)."""
    from datasketch import MinHashLSH

    n = len(shingle_sets)
    if n < 2:
        return [False] * n
    mh = list(mh) if mh is not None else minhashes(list(shingle_sets), num_perm)
    lsh = MinHashLSH(threshold=lsh_threshold(threshold), num_perm=num_perm)
    flags = [False] * n
    for i, m in enumerate(mh):
        for j in lsh.query(m):
            if flags[i] and flags[j]:  # nothing left to learn from this pair
                continue
            if jaccard(shingle_sets[i], shingle_sets[j]) >= threshold:
                flags[i] = flags[j] = True
        lsh.insert(i, m)
    return flags
