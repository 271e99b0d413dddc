"""Several reviewers on one workspace: named judgments per row, the review queue, agreement, guidelines.

A *judgment* is one reviewer's verdict on one row as it stands (`accept` or `reject`, with an optional note);
a reviewer has at most one judgment per row (judging again replaces it). The project sets how many judgments a
row needs (`judgments_needed`, default 1). How judgments become the row's decision (the single, sticky decision
of `curation`, which training and every export read):

| judgments on the row | the row's decision |
|---|---|
| fewer than `judgments_needed` | unchanged (the machine verdict, or an earlier decision) - the row is *pending* |
| enough, a strict majority accepts | `accepted` (an edited row stays `edited`) |
| enough, a strict majority rejects | `rejected`, reason "the majority of reviewers rejected it (2 of 3: Ana, Ben)" |
| enough, a tie | unchanged - the row is *disputed* and goes back to the queue for one more judgment |

With one reviewer and `judgments_needed` 1 a judgment is exactly the accept/reject of the review grid. A decision
made directly in the grid (or with `datatune rows accept|reject`) stays a decision like any other: the next
judgment that completes a majority on that row writes the majority's decision over it.

The queue serves the rows still needing a judgment (pending or disputed, not yet judged by this reviewer) with the
fewest judgments first and, among equals, the most disagreement (the minority's share of the verdicts).
Agreement is Krippendorff's alpha (nominal, the maintained `krippendorff` package) over every row with two or
more judgments, overall and per label (the row's output), with the observed pairwise agreement beside it and
Cohen's kappa (scikit-learn) for each pair of reviewers.

    >>> judge(store, pid, [12, 13], "Ana", "reject", note="off-topic")
    >>> queue(store, pid, reviewer="Ben")[0]["id"]
    >>> agreement(store, pid)["alpha"]
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

from datatune_core.errors import UserError

VERDICTS = ("accept", "reject")
NEEDED_KEY, GUIDELINES_KEY = "judgments_needed", "guidelines"
MAX_NEEDED, MAX_GUIDELINES = 10, 20_000
MAX_LABELS = 10  # per-label agreement: the most common outputs; the rest are grouped as "other"
_NAME = re.compile(r"^[\w][\w .'-]{0,39}$", re.UNICODE)


def clean_name(name: str | None) -> str:
    """A reviewer's name, trimmed; UserError naming the rule when it does not fit."""
    n = " ".join(str(name or "").split())
    if not n:
        raise UserError("Type your name (e.g. Ana) so your judgments are told apart from the other reviewers'.")
    if not _NAME.match(n):
        raise UserError(f"The name {n[:50]!r} does not fit: use 1 to 40 letters, digits, spaces, dots, dashes or "
                        "apostrophes, starting with a letter or digit.")
    return n


# ------------------------------------------------------------------------------------------ project settings
def _settings(store, pid: int) -> dict:
    return dict(store.get_project(pid).settings or {})


def _set(store, pid: int, **values: Any) -> None:
    s = _settings(store, pid)
    s.update(values)
    store.update_project(pid, settings=s)


def judgments_needed(store, pid: int) -> int:
    """How many judgments a row needs before they decide it (project setting, default 1)."""
    try:
        return max(1, min(MAX_NEEDED, int(_settings(store, pid).get(NEEDED_KEY) or 1)))
    except (TypeError, ValueError):
        return 1


def set_judgments_needed(store, pid: int, n: int) -> int:
    """Set the judgments a row needs (1 to 10) and apply the rule to every judged row; returns rows decided."""
    if not isinstance(n, int) or not 1 <= n <= MAX_NEEDED:
        raise UserError(f"Judgments needed per row must be a whole number from 1 to {MAX_NEEDED}, not {n!r}.")
    _set(store, pid, **{NEEDED_KEY: n})
    ids = [r[0] for r in store.query("SELECT DISTINCT row_id FROM row_judgments WHERE project_id=?", (pid,))]
    return apply_majority(store, pid, ids)


def guidelines(store, pid: int) -> str:
    """The project's annotation guidelines (Markdown; empty when none were written)."""
    return str(_settings(store, pid).get(GUIDELINES_KEY) or "")


def set_guidelines(store, pid: int, text: str) -> str:
    text = (text or "").strip()
    if len(text) > MAX_GUIDELINES:
        raise UserError(f"The guidelines are {len(text):,} characters long; keep them under {MAX_GUIDELINES:,} "
                        "(link to a longer document instead).")
    _set(store, pid, **{GUIDELINES_KEY: text})
    return text


# ------------------------------------------------------------------------------------------ judgments -> decision
def row_decision(verdicts: Iterable[str], needed: int) -> str | None:
    """The decision a row's verdicts make (see the module table): 'accepted', 'rejected' or None."""
    c = Counter(verdicts)
    n = sum(c.values())
    if n < max(1, needed):
        return None
    if c["accept"] * 2 > n:
        return "accepted"
    if c["reject"] * 2 > n:
        return "rejected"
    return None


def _verdicts(store, row_id: int) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in store.query("SELECT reviewer, verdict FROM row_judgments WHERE row_id=? "
                                              "ORDER BY reviewer", (row_id,))]


def apply_majority(store, pid: int, row_ids: Iterable[int]) -> int:
    """Write the decision the judgments make on each row (unchanged rows are left alone); returns rows changed."""
    from datatune_core.store.curation import USER_REJECTED, decide

    needed = judgments_needed(store, pid)
    changed = 0
    for rid in {int(i) for i in row_ids}:
        vs = _verdicts(store, rid)
        dec = row_decision([v for _, v in vs], needed)
        if dec is None:
            continue
        cur = store.query_one("SELECT decision FROM rows WHERE id=?", (rid,))
        if cur is None:
            continue
        now = cur[0]
        if dec == "accepted" and now in ("accepted", "edited"):
            continue
        reason = None
        if dec == "rejected":
            who = [name for name, v in vs if v == "reject"]
            reason = (f"{USER_REJECTED}: the majority of reviewers rejected it ({len(who)} of {len(vs)}: "
                      f"{', '.join(who)})")
            old = store.query_one("SELECT decision_reason FROM rows WHERE id=?", (rid,))[0]
            if now == "rejected" and old == reason:
                continue
        changed += decide(store, [rid], dec, reason, project_id=pid)
    return changed


def judge(store, pid: int, row_ids: Iterable[int], reviewer: str, verdict: str, note: str | None = None) -> dict:
    """Record (or replace) `reviewer`'s verdict on rows, then apply the majority rule to them."""
    name = clean_name(reviewer)
    if verdict not in VERDICTS:
        raise UserError(f"A judgment is 'accept' or 'reject', not {verdict!r}.")
    ids = [int(i) for i in row_ids]
    if not ids:
        raise UserError("Name at least one row to judge (row ids as in `datatune rows list PROJECT`).")
    found = {r[0] for r in store.query(f"SELECT id FROM rows WHERE project_id=? AND id IN "
                                       f"({','.join('?' * len(ids))})", (pid, *ids))}
    missing = [i for i in ids if i not in found]
    if missing:
        raise UserError(f"No row with id {', '.join(map(str, missing[:10]))} in this project. List the rows with "
                        "`datatune rows list PROJECT`.")
    t = time.time()
    with store.tx() as c:
        for rid in ids:
            c.execute("INSERT INTO row_judgments(project_id, row_id, reviewer, verdict, note, created_at, updated_at)"
                      " VALUES (?,?,?,?,?,?,?) ON CONFLICT(row_id, reviewer) DO UPDATE SET verdict=excluded.verdict,"
                      " note=excluded.note, updated_at=excluded.updated_at",
                      (pid, rid, name, verdict, (note or "").strip() or None, t, t))
    decided = apply_majority(store, pid, ids)
    return {"reviewer": name, "verdict": verdict, "judged": len(ids), "decided": decided, "ids": ids}


def withdraw(store, pid: int, row_ids: Iterable[int], reviewer: str) -> int:
    """Remove `reviewer`'s judgments on rows (the rows' decisions stay as they are)."""
    ids = [int(i) for i in row_ids]
    with store.tx() as c:
        return c.execute(f"DELETE FROM row_judgments WHERE project_id=? AND reviewer=? AND row_id IN "
                         f"({','.join('?' * len(ids))})", (pid, clean_name(reviewer), *ids)).rowcount


def judgments(store, pid: int, row_id: int | None = None) -> list[dict]:
    q = "SELECT row_id, reviewer, verdict, note, updated_at FROM row_judgments WHERE project_id=?"
    params: list[Any] = [pid]
    if row_id is not None:
        q += " AND row_id=?"
        params.append(int(row_id))
    return [dict(r) for r in store.query(q + " ORDER BY row_id, reviewer", params)]


def reviewers(store, pid: int) -> list[str]:
    return [r[0] for r in store.query("SELECT DISTINCT reviewer FROM row_judgments WHERE project_id=? "
                                      "ORDER BY reviewer", (pid,))]


# ------------------------------------------------------------------------------------------ the queue
def queue(store, pid: int, reviewer: str | None = None, limit: int = 20) -> list[dict]:
    """Rows still needing a judgment, fewest judgments first, then the most disagreement, then by id.

    A row qualifies when it is kept or edited (or already judged), has fewer judgments than the project needs or
    a tie, and `reviewer` has not judged it yet."""
    needed = judgments_needed(store, pid)
    params: list[Any] = [pid]
    mine = ""
    if reviewer:
        mine = "AND NOT EXISTS (SELECT 1 FROM row_judgments m WHERE m.row_id=r.id AND m.reviewer=?)"
        params.append(clean_name(reviewer))
    params += [needed, max(1, int(limit))]
    rows = store.query(
        "SELECT r.id, r.input, r.output, r.status, r.dataset_id, r.source, COUNT(j.id) AS n, "
        "COALESCE(SUM(j.verdict='accept'), 0) AS acc FROM rows r LEFT JOIN row_judgments j ON j.row_id=r.id "
        f"WHERE r.project_id=? AND (r.status IN ('kept','edited') OR j.id IS NOT NULL) {mine} "
        "GROUP BY r.id HAVING n < ? OR acc * 2 = n "
        "ORDER BY n ASC, (MIN(acc, n - acc) * 1.0 / MAX(n, 1)) DESC, r.id ASC LIMIT ?", params)
    return [{"id": r["id"], "input": r["input"], "output": r["output"], "status": r["status"],
             "dataset_id": r["dataset_id"], "source": r["source"], "judgments": r["n"], "accepts": r["acc"],
             "rejects": r["n"] - r["acc"], "disagreement": round(min(r["acc"], r["n"] - r["acc"]) / max(1, r["n"]), 3)}
            for r in rows]


def queue_size(store, pid: int, reviewer: str | None = None) -> int:
    return len(queue(store, pid, reviewer, limit=10 ** 9))


# ------------------------------------------------------------------------------------------ agreement
def _alpha(units: list[dict[str, int]], names: list[str]) -> float | None:
    """Krippendorff's alpha (nominal) of reviewers x rows; None where undefined (no pairs, or one value only)."""
    import numpy as np

    pairable = [u for u in units if len(u) >= 2]
    if not pairable or len({v for u in pairable for v in u.values()}) < 2:
        return None
    import krippendorff

    data = np.full((len(names), len(pairable)), np.nan)
    col = {n: i for i, n in enumerate(names)}
    for j, u in enumerate(pairable):
        for name, v in u.items():
            data[col[name], j] = v
    try:
        a = float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))
    except (ValueError, ZeroDivisionError):
        return None
    return None if math.isnan(a) else round(a, 4) + 0.0  # + 0.0: never "-0.00"


def _observed(units: list[dict[str, int]]) -> float | None:
    """Observed agreement: the share of agreeing reviewer pairs, averaged over rows with 2+ judgments."""
    vals = []
    for u in units:
        m = len(u)
        if m < 2:
            continue
        c = Counter(u.values())
        vals.append(sum(k * (k - 1) for k in c.values()) / (m * (m - 1)))
    return round(sum(vals) / len(vals), 4) if vals else None


def _pairs(units: list[dict[str, int]], names: list[str]) -> list[dict]:
    """Cohen's kappa (scikit-learn) for each pair of reviewers on the rows both judged."""
    from sklearn.metrics import cohen_kappa_score

    out = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            both = [(u[a], u[b]) for u in units if a in u and b in u]
            kappa = None
            if len(both) >= 2 and len({v for p in both for v in p}) >= 2:
                k = float(cohen_kappa_score([x for x, _ in both], [y for _, y in both], labels=[0, 1]))
                kappa = None if math.isnan(k) else round(k, 4)
            out.append({"a": a, "b": b, "rows": len(both), "kappa": kappa,
                        "observed": round(sum(x == y for x, y in both) / len(both), 4) if both else None})
    return out


def agreement(store, pid: int) -> dict:
    """Agreement among the project's reviewers: overall and per label, with the counts behind them."""
    rows = store.query("SELECT j.row_id, j.reviewer, j.verdict, r.output FROM row_judgments j JOIN rows r ON "
                       "r.id=j.row_id WHERE j.project_id=? ORDER BY j.row_id, j.reviewer", (pid,))
    units: dict[int, dict[str, int]] = {}
    label_of: dict[int, str] = {}
    for r in rows:
        units.setdefault(r["row_id"], {})[r["reviewer"]] = 1 if r["verdict"] == "accept" else 0
        label_of[r["row_id"]] = " ".join(str(r["output"] or "").split())[:60] or "(empty)"
    names = sorted({n for u in units.values() for n in u})
    multi = {k: u for k, u in units.items() if len(u) >= 2}
    common = [lab for lab, _ in Counter(label_of[k] for k in multi).most_common(MAX_LABELS)]
    per_label = []
    for lab in common + (["other"] if len({label_of[k] for k in multi}) > len(common) else []):
        us = [u for k, u in multi.items() if (label_of[k] == lab if lab in common else label_of[k] not in common)]
        per_label.append({"label": lab, "rows": len(us), "alpha": _alpha(us, names), "observed": _observed(us)})
    alpha = _alpha(list(multi.values()), names)
    out = {"reviewers": names, "rows_judged": len(units), "rows_with_multiple": len(multi),
           "judgments": sum(len(u) for u in units.values()), "judgments_needed": judgments_needed(store, pid),
           "alpha": alpha, "observed": _observed(list(multi.values())), "per_label": per_label,
           "pairs": _pairs(list(multi.values()), names), "metric": "Krippendorff's alpha (nominal)"}
    if not multi:
        out["note"] = "No row has two judgments yet: agreement needs at least two reviewers on the same rows."
    elif alpha is None:
        out["note"] = ("Every judgment so far is the same verdict, so alpha is undefined; the observed agreement "
                       "says how often reviewers agreed.")
    return out
