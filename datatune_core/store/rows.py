"""Rows with provenance: writing them by identity, filtering and counting, and the user's decisions
(accept, reject, edit; see `curation`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from datatune_core.store.database import Database
from datatune_core.store.records import RowRecord, _row


class RowTables(Database):
    """The rows table and its edits."""

    # --------------------------------------------------------------------- rows
    def add_rows(self, project_id: int, rows: Iterable[RowRecord]) -> int:
        """Write rows by identity (project, source, dataset, config, source row id): a known row gets a new revision
        and keeps the user's decision (see `curation`). A record with status 'edited', or 'rejected' with a
        `user_rejected` reason, is taken as that user decision."""
        from datatune_core.store import curation

        rows = list(rows)
        with self.tx() as c:  # the rows and the decisions they carry commit together
            curation.write_rows(c, project_id, rows)
            for r in rows:
                user = "edited" if r.status == "edited" else (
                    "rejected" if r.status == "rejected" and (r.reason or "").startswith(curation.USER_REJECTED)
                    else None)
                if user:
                    reason = r.reason if user == "rejected" else None
                    c.execute("UPDATE rows SET decision=?, decision_reason=?, status=?, reason=? WHERE project_id=? "
                              "AND source=? AND dataset_id=? AND config=? AND source_row_id=?",
                              (user, reason, user, reason, project_id, r.source, r.dataset_id, r.config or "",
                               str(r.source_row_id)))
        return len(rows)

    def _row_filter(self, project_id: int, status: str | Iterable[str] | None = None,
                    dataset_id: str | None = None, reason: str | None = None, search: str | None = None,
                    source: str | None = None, run_id: str | None = None,
                    min_len: int | None = None, max_len: int | None = None, decision: str | None = None,
                    stale: bool | None = None) -> tuple[str, list[Any]]:
        where, params = ["project_id=?"], [project_id]
        if decision:
            where.append("decision=?")
            params.append(decision)
        if stale is not None:
            where.append("stale IS NOT NULL" if stale else "stale IS NULL")
        if status:
            sts = [status] if isinstance(status, str) else list(status)
            where.append(f"status IN ({','.join('?' * len(sts))})")
            params += sts
        if dataset_id:
            where.append("dataset_id=?")
            params.append(dataset_id)
        if source:
            where.append("source=?")
            params.append(source)
        if run_id is not None:
            where.append("run_id=?")
            params.append(run_id)
        if reason:
            where.append("reason LIKE ?")
            params.append(f"{reason}%")
        if search:
            where.append("(input LIKE ? OR output LIKE ?)")
            params += [f"%{search}%", f"%{search}%"]
        if min_len is not None:
            where.append("LENGTH(COALESCE(input,''))+LENGTH(COALESCE(output,'')) >= ?")
            params.append(min_len)
        if max_len is not None:
            where.append("LENGTH(COALESCE(input,''))+LENGTH(COALESCE(output,'')) <= ?")
            params.append(max_len)
        return " AND ".join(where), params

    def list_rows(self, project_id: int, *, limit: int = 100, offset: int = 0, **filters: Any) -> list[RowRecord]:
        where, params = self._row_filter(project_id, **filters)
        rows = self.query(f"SELECT * FROM rows WHERE {where} ORDER BY id LIMIT ? OFFSET ?", [*params, limit, offset])
        return [_row(r) for r in rows]

    def count_rows(self, project_id: int, **filters: Any) -> int:
        where, params = self._row_filter(project_id, **filters)
        return int(self.query_one(f"SELECT COUNT(*) FROM rows WHERE {where}", params)[0])

    def row_stats(self, project_id: int) -> dict:
        """Counts by status, by source dataset and by reason code of rejected and filtered rows."""
        by_status = {r[0]: r[1] for r in self.query(
            "SELECT status, COUNT(*) FROM rows WHERE project_id=? GROUP BY status", (project_id,))}
        by_source = {f"{r[0]}|{r[1]}" if r[1] else r[0]: r[2] for r in self.query(
            "SELECT dataset_id, config, COUNT(*) FROM rows WHERE project_id=? GROUP BY dataset_id, config",
            (project_id,))}
        by_reason: dict[str, int] = {}
        for r in self.query("SELECT reason, COUNT(*) FROM rows WHERE project_id=? AND status IN "
                            "('rejected','filtered') GROUP BY reason", (project_id,)):
            key = (r[0] or "unknown").split(":")[0]
            by_reason[key] = by_reason.get(key, 0) + r[1]
        return {"by_status": by_status, "by_source": by_source, "by_reason": by_reason,
                "total": sum(by_status.values())}

    def get_row(self, row_id: int) -> RowRecord:
        r = self.query_one("SELECT * FROM rows WHERE id=?", (row_id,))
        if r is None:
            raise KeyError(f"No row with id {row_id}.")
        return _row(r)

    def edit_row(self, row_id: int, *, input: str | None = None, output: str | None = None) -> None:
        """A user edit: keeps the old values in `row_edits`, marks the row 'edited' (a sticky user decision)."""
        from datatune_core.store.curation import edit

        edit(self, row_id, input=input, output=output)

    def row_edit_history(self, row_id: int) -> list[dict]:
        return [dict(r) for r in self.query("SELECT * FROM row_edits WHERE row_id=? ORDER BY id", (row_id,))]

    def set_row_status(self, row_ids: Iterable[int], status: str, reason: str | None = None) -> int:
        """The user accepts ('kept') or rejects rows; the decision outlives every re-run."""
        from datatune_core.store.curation import decide

        if status not in ("kept", "rejected"):
            raise ValueError("A user can set a row to 'kept' (accept) or 'rejected'; edits go through edit_row.")
        return decide(self, row_ids, "accepted" if status == "kept" else "rejected", reason)

    def set_status_where(self, project_id: int, new_status: str, new_reason: str | None = None,
                         **filters: Any) -> int:
        """Bulk accept/reject of every row matching the filters (the review page's filtered selection).

        Filters are those of `list_rows` (status, dataset_id, reason, search, source, min_len, max_len)."""
        where, params = self._row_filter(project_id, **filters)
        ids = [r[0] for r in self.query(f"SELECT id FROM rows WHERE {where}", params)]
        return self.set_row_status(ids, new_status, new_reason)

    def delete_rows(self, project_id: int, run_id: str | None = None) -> int:
        with self.tx() as c:
            if run_id is None:
                return c.execute("DELETE FROM rows WHERE project_id=?", (project_id,)).rowcount
            return c.execute("DELETE FROM rows WHERE project_id=? AND run_id=?", (project_id, run_id)).rowcount
