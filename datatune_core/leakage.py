"""The one leakage guard: does a training row contain (a copy or a near copy of) a test input?

Used by retrieval (`retrieval.leakage_guard.LeakageGuard`: the unit's families and the exact segment hashes of every
catalog row, `unit_test_hashes`), validation (`transformation.validate`: the `eval_overlap` filter is a `LeakIndex`),
training (`training.data.filter_leakage` refuses a leaking set) and evaluation
(`evaluation.adapter_leakage.check_leakage` re-checks an adapter's training rows against the unit or project test
set), whatever the order in which the evaluation unit was chosen.

A row leaks a test input when one of its texts (input *and* output, since question-generation rows carry the
question as output) or one *segment* of it — the part before an "Options:" list, the text without its choice
lines, a paragraph, a line without a "Q:"/"Input:" label — after `normalize_text`:
- equals the test input ("exact"),
- contains it, for test inputs of at least `MIN_CONTAIN_WORDS` words ("contains": the text inside a reformatted
  row such as "input\\nOptions:\\n- ..."),
- or is a near duplicate of it: Jaccard similarity of word 1+2-gram shingles >= `threshold` (0.7: one word
  changed in a 12-word input still matches), found and confirmed by `text.NearDuplicates` (MinHash LSH
  candidates, the exact Jaccard decides: the one near-duplicate definition, also validation's and the quality
  profile's) ("near"); texts under `MIN_NEAR_WORDS` words only match exactly or contained.
Family exclusion: rows whose source dataset belongs to the evaluation unit's BIG-bench family (or a known overlap)
leak too ("family").

    >>> idx = LeakIndex(["Is the sky blue on a clear day?"], name="my test set")
    >>> idx.match("Is the sky blue on a clear day?\\nOptions:\\n- yes\\n- no")[1]
    'contains'
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from datatune_core.errors import UserError
from datatune_core.text import (NearDuplicates, jaccard, minhash, normalize_text, text_hash,  # noqa: F401
                                text_shingles)  # (defined once in text.py)
from datatune_core.errors import LeakageError  # noqa: F401  (all exceptions live in errors.py)

MIN_CONTAIN_WORDS = 5  # shorter test inputs only match exactly (or as a whole segment)
NEAR_THRESHOLD = 0.7
NUM_PERM = 64
MIN_NEAR_WORDS = 5

_WS = re.compile(r"\s+", re.UNICODE)
_WORD = re.compile(r"\w+", re.UNICODE)
_OPTIONS = re.compile(r"\n\s*(?:options|choices|answer choices|possible answers)\s*:", re.I)
_CHOICE_LINE = re.compile(r"^\s*(?:choice\s*:|[-*\u2022]\s|\(?[a-hA-H1-9]\)\s|[a-hA-H][.)]\s)")
_LABEL = re.compile(r"^\s*(?:q|question|input|context|premise|text|sentence|passage|statement)\s*:\s*", re.I)


def segments(text: str) -> list[str]:
    """The texts a test input may hide in inside `text`: the whole, the stem before an options list, the text
    without choice lines, each paragraph and each line (with a leading "Q:"/"Input:"-style label dropped)."""
    text = str(text or "")
    lines = text.splitlines()
    out = [text, _OPTIONS.split(text, 1)[0], "\n".join(x for x in lines if not _CHOICE_LINE.match(x))]
    out += re.split(r"\n\s*\n", text)
    out += [_LABEL.sub("", x) for x in lines]
    seen, uniq = set(), []
    for s in out:
        n = normalize_text(s)
        if n and n not in seen:
            seen.add(n)
            uniq.append(s)
    return uniq


def segment_hashes(text: str) -> set[str]:
    return {text_hash(s) for s in segments(text)}


def row_texts(row: dict) -> list[str]:
    """The string values of a row (lists of strings joined by newlines)."""
    out = []
    for v in row.values():
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, list) and v and all(isinstance(x, str) for x in v):
            out.append("\n".join(v))
    return out


def row_hashes(row: dict) -> frozenset[str]:
    """Exact segment hashes of every text of a catalog row (what retrieval caches per row)."""
    hs: set[str] = set()
    for t in row_texts(row):
        hs |= segment_hashes(t)
    hs.discard(text_hash(""))
    return frozenset(hs)


def _near_shingles(text: str) -> set[str] | None:
    """The shingles of a text long enough for the near check (MIN_NEAR_WORDS words), else None."""
    sh = text_shingles(text)
    return sh if len(sh) >= 2 * MIN_NEAR_WORDS - 1 else None


@dataclass
class Leak:
    """One leaking row: which row (index in the checked list), which test input, how."""

    row: int
    test: int
    kind: str  # exact | contains | near | family
    detail: str

    def sentence(self, row_label: str = "") -> str:
        return f"row {row_label or self.row + 1} {self.detail}"


class LeakIndex:
    """Every test input of one or more test sets, ready to match training texts against (`threshold` above 1:
    exact and contained copies only)."""

    def __init__(self, tests: Sequence[str], *, name: str = "the test set", threshold: float = NEAR_THRESHOLD):
        self.name, self.threshold = name, threshold
        self.tests = [str(t) for t in tests]
        self.exact: dict[str, int] = {}
        self.long: list[tuple[str, int]] = []
        # the one near-duplicate index (text.py), keys (test, variant); a threshold above 1 turns the near check off
        self.near = NearDuplicates(threshold, NUM_PERM) if threshold <= 1 else None
        for i, t in enumerate(self.tests):
            for k, s in enumerate(dict.fromkeys([t, _OPTIONS.split(t, 1)[0]])):
                n = normalize_text(s)
                if not n:
                    continue
                self.exact.setdefault(text_hash(s), i)
                if len(_WORD.findall(n)) >= MIN_CONTAIN_WORDS:
                    self.long.append((n, i))
                sh = _near_shingles(s) if self.near is not None else None
                if sh is not None:
                    self.near.add((i, k), sh)

    @property
    def hashes(self) -> set[str]:
        return set(self.exact)

    def __len__(self) -> int:
        return len(self.tests)

    def _quote(self, i: int) -> str:
        t = _WS.sub(" ", self.tests[i]).strip()
        return t if len(t) <= 60 else t[:57] + "..."

    def match(self, text: str) -> tuple[int, str, str] | None:
        """(test index, kind, plain-language detail) of the first test input `text` leaks, else None."""
        segs = segments(text)
        for s in segs:
            i = self.exact.get(text_hash(s))
            if i is not None:
                return i, "exact", f"equals test input {i + 1} of {self.name} (\"{self._quote(i)}\")"
        whole = normalize_text(text)
        for n, i in self.long:
            if n in whole:
                return i, "contains", f"contains test input {i + 1} of {self.name} (\"{self._quote(i)}\")"
        for s in segs if self.near is not None else ():
            sh = _near_shingles(s)
            hit = self.near.match(sh) if sh is not None else None
            if hit is not None:
                (i, _), j = hit
                return i, "near", (f"is a near copy (similarity {j:.2f}) of test input {i + 1} of {self.name} "
                                   f"(\"{self._quote(i)}\")")
        return None

    def find(self, rows: Iterable[dict], fields: Sequence[str] = ("input", "output")) -> list[Leak]:
        """Every leaking row among `rows` (its input and output are checked)."""
        out = []
        for r_i, row in enumerate(rows):
            for f in fields:
                hit = self.match(str(row.get(f) or ""))
                if hit:
                    i, kind, detail = hit
                    out.append(Leak(r_i, i, kind, (f"(its {f}) " if f != "input" else "") + detail))
                    break
        return out


# ----------------------------------------------------------------------------- test sets and families
def unit_test_texts(unit: str, root: str | None = None) -> list[str]:
    """A BIG-bench unit's test inputs as guards see them (choice-only units: the choices)."""
    from datatune_core.benchmark import bigbench

    return bigbench.test_inputs(unit, root)


@lru_cache(maxsize=16)
def _unit_index(unit: str, root: str | None, mtime: float) -> LeakIndex:
    return LeakIndex(unit_test_texts(unit, root), name=unit)


def index_for_unit(unit: str, root: str | None = None) -> LeakIndex:
    """The (cached) LeakIndex of a unit's test inputs."""
    from datatune_core.benchmark import bigbench

    d = bigbench.root_dir(root)
    return _unit_index(unit, str(d), (d / "splits.json").stat().st_mtime)


def unit_test_hashes(unit: str, root: str | None = None) -> set[str]:
    """Exact hashes of a unit's test inputs (each alone, its stem before an options list, and shown with its
    choices): what a catalog row's segment hashes (`row_hashes`) are compared with."""
    from datatune_core.benchmark import bigbench

    hashes = index_for_unit(unit, root).hashes | set(bigbench.test_hashes(unit, root))
    hashes.discard(text_hash(""))
    return hashes


def excluded_families(unit: str, root: str | None = None) -> set[str]:
    """The task families an evaluation unit excludes from retrieval and training (its task + known overlaps)."""
    from datatune_core.benchmark import bigbench

    return set(bigbench.excluded_families(unit, root))


def record_family(record) -> str | None:
    """A catalog record's BIG-bench family: its `family` field, else (a BIG-bench record) the task in its id."""
    fam = record.family
    if fam is None and record.source == "bigbench":
        fam = record.id.split("/")[1] if "/" in record.id else record.id
    return fam


@lru_cache(maxsize=1)
def _catalog_families() -> dict[str, str]:
    try:
        from datatune_core.catalog.records import load_catalogs

        return {r.id: r.family for r in load_catalogs().records if r.family}
    except Exception:  # no catalog: only bigbench/<task> ids can be placed
        return {}


def family_of(dataset_id: str | None) -> str | None:
    """The BIG-bench family of a source dataset id ("bigbench/<task>[/...]"), or the catalog's family field."""
    if not dataset_id:
        return None
    if dataset_id.startswith("bigbench/"):
        return dataset_id.split("/")[1]
    return _catalog_families().get(dataset_id)


def family_leaks(rows: Sequence[dict], units: Sequence[str], root: str | None = None) -> list[Leak]:
    """Rows whose source dataset (`dataset_id`) is in an evaluation unit's excluded families."""
    out = []
    for u in units:
        fams = excluded_families(u, root)
        for r_i, row in enumerate(rows):
            fam = family_of(row.get("dataset_id"))
            if fam and fam in fams:
                out.append(Leak(r_i, -1, "family", f"comes from {row.get('dataset_id')}, the same task family "
                                                   f"({fam}) as the evaluation task {u}"))
    return out


def find_leaks(rows: Sequence[dict], units: Sequence[str] = (), test_texts: Sequence[str] = (),
               test_name: str = "the project's test set", root: str | None = None) -> list[Leak]:
    """Family and text leaks of `rows` against BIG-bench units and/or the project's own test inputs (one per row)."""
    leaks: dict[int, Leak] = {}
    for lk in family_leaks(rows, units, root):
        leaks.setdefault(lk.row, lk)
    indexes = [index_for_unit(u, root) for u in units]
    if test_texts:
        indexes.append(LeakIndex(list(test_texts), name=test_name))
    rest = [i for i in range(len(rows)) if i not in leaks]
    for idx in indexes:
        for lk in idx.find([rows[i] for i in rest]):
            lk.row = rest[lk.row]
            leaks.setdefault(lk.row, lk)
        rest = [i for i in rest if i not in leaks]
    return [leaks[i] for i in sorted(leaks)]


def leak_message(leaks: list[Leak], rows: Sequence[dict], what: str = "training rows", limit: int = 5) -> str:
    """A plain sentence naming the leaking rows (by row id when rows carry one) and why, and the fix."""
    def label(lk: Leak) -> str:
        rid = rows[lk.row].get("id") if lk.row < len(rows) else None
        return f"#{rid}" if rid is not None else str(lk.row + 1)

    shown = "; ".join(lk.sentence(label(lk)) for lk in leaks[:limit])
    more = f" (and {len(leaks) - limit} more)" if len(leaks) > limit else ""
    return (f"{len(leaks)} of the {len(rows)} {what} leak test data, so the score would be inflated: {shown}{more}. "
            "Reject those rows on the Review page (or drop their source dataset) and train again.")
