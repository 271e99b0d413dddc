"""The response cache (`llm_cache`), the call ledger (`llm_calls`) and batch bookkeeping (`llm_batches`) in the
workspace store, plus spend queries for budgets and the `datatune llm ledger` view.

A cache entry is the provider's raw reply (text, JSON object, model) keyed by a hash of provider, model,
parameters, messages and schema; a ledger row is written for every call the client answers, cache hits
included (with 0 tokens and $0).

    >>> from datatune_core.llm.ledger import ledger_summary
    >>> ledger_summary(store, project_id=1)   # {"calls": .., "cost_usd": .., "by_stage": [...]}
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from datatune_core.store import Store
from datatune_core.llm.base import LLMRequest, ProviderReply, Usage


KEY_VERSION = 2  # 2: the parser and the stage's validator versions are part of the key


def request_key(provider_id: str, model: str, req: LLMRequest) -> str:
    """sha256 over everything that changes the answer or how it is read (never over secrets): the whole prompt
    text (system, shared prefix, messages), the schema, the sampling parameters, the reply parser's version
    (`parsing.PARSER_VERSION`) and the stage's own parser/validator version (`req.metadata["validator"]`, e.g.
    the per-row transform's). Editing a prompt template or bumping either version never serves a stale answer."""
    from datatune_core.llm.parsing import PARSER_VERSION

    payload = {
        "provider": provider_id, "model": model, "system": req.system, "shared_prefix": req.shared_prefix,
        "messages": req.messages, "schema": req.schema_json(), "max_tokens": req.max_tokens,
        "temperature": req.temperature, "seed": req.metadata.get("seed"), "key_version": KEY_VERSION,
        "parser": PARSER_VERSION, "validator": req.metadata.get("validator"),
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def reply_to_json(reply: ProviderReply) -> str:
    return json.dumps({"text": reply.text, "data": reply.data, "model": reply.model,
                       "stop_reason": reply.stop_reason,
                       "usage": vars(reply.usage)}, ensure_ascii=False, default=str)


def reply_from_json(s: str) -> ProviderReply:
    d = json.loads(s)
    return ProviderReply(text=d.get("text") or "", data=d.get("data"), model=d.get("model"),
                         stop_reason=d.get("stop_reason"), usage=Usage(**(d.get("usage") or {})))


def cache_get(store: Store, key: str) -> ProviderReply | None:
    r = store.query_one("SELECT response_json FROM llm_cache WHERE key=?", (key,))
    return reply_from_json(r[0]) if r else None


def cache_put(store: Store, key: str, provider: str, model: str, reply: ProviderReply) -> None:
    with store.tx() as c:
        c.execute("INSERT OR REPLACE INTO llm_cache(key, provider, model, response_json, created_at) "
                  "VALUES (?,?,?,?,?)", (key, provider, model, reply_to_json(reply), time.time()))


def cache_clear(store: Store, provider: str | None = None) -> int:
    with store.tx() as c:
        if provider:
            return c.execute("DELETE FROM llm_cache WHERE provider=?", (provider,)).rowcount
        return c.execute("DELETE FROM llm_cache").rowcount


def record_call(store: Store, *, project_id: int | None, job_id: int | None, stage: str | None, provider: str,
                model: str, key: str, unit_key: str | None, usage: Usage, cost_usd: float, latency_ms: float,
                status: str, error: str | None, from_cache: bool, batch: bool) -> int:
    with store.tx() as c:
        cur = c.execute(
            "INSERT INTO llm_calls(project_id, job_id, stage, provider, model, request_hash, unit_key, input_tokens,"
            " output_tokens, cache_read_tokens, cache_write_tokens, cost_usd, latency_ms, status, error, from_cache,"
            " batch, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (project_id, job_id, stage, provider, model, key, unit_key, usage.input_tokens, usage.output_tokens,
             usage.cache_read_tokens, usage.cache_write_tokens, cost_usd, latency_ms, status,
             (error or None) and error[:2000], int(from_cache), int(batch), time.time()))
        return int(cur.lastrowid)


def project_spent(store: Store, project_id: int) -> float:
    r = store.query_one("SELECT COALESCE(SUM(cost_usd), 0) FROM llm_calls WHERE project_id=?", (project_id,))
    return float(r[0]) if r else 0.0


def _where(project_id: int | None, job_id: int | None) -> tuple[list[str], list[Any]]:
    """WHERE clauses (and their parameters) selecting one project's and/or one job's calls."""
    where: list[str] = []
    params: list[Any] = []
    for col, val in (("project_id", project_id), ("job_id", job_id)):
        if val is not None:
            where.append(f"{col}=?")
            params.append(val)
    return where, params


def list_calls(store: Store, project_id: int | None = None, job_id: int | None = None, limit: int = 50) -> list[dict]:
    where, params = _where(project_id, job_id)
    sql = "SELECT * FROM llm_calls" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC LIMIT ?"
    return [dict(r) for r in store.query(sql, (*params, limit))]


def ledger_summary(store: Store, project_id: int | None = None, job_id: int | None = None) -> dict[str, Any]:
    """Totals and a per-stage/model breakdown: calls, cache hits, tokens, cost."""
    where, params = _where(project_id, job_id)
    w = (" WHERE " + " AND ".join(where)) if where else ""
    cols = ("COUNT(*) AS calls, SUM(from_cache) AS cache_hits, SUM(status='ok') AS ok, SUM(batch) AS batched, "
            "SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens, "
            "SUM(cache_read_tokens) AS cache_read_tokens, SUM(cache_write_tokens) AS cache_write_tokens, "
            "ROUND(SUM(cost_usd), 6) AS cost_usd, ROUND(AVG(CASE WHEN from_cache=0 THEN latency_ms END), 1) "
            "AS avg_latency_ms")
    total = dict(store.query_one(f"SELECT {cols} FROM llm_calls{w}", params))
    by = [dict(r) for r in store.query(
        f"SELECT COALESCE(stage, '-') AS stage, provider, model, {cols} FROM llm_calls{w} "
        "GROUP BY stage, provider, model ORDER BY cost_usd DESC", params)]
    total = {k: (v or 0) for k, v in total.items()}
    return {**total, "by_stage": by}


# ------------------------------------------------------------------------------------------- batches
def batch_open(store: Store, provider: str, project_id: int | None) -> list[dict]:
    rows = store.query("SELECT * FROM llm_batches WHERE provider=? AND status NOT IN ('collected','failed') "
                       "AND (project_id IS ? OR project_id=?) ORDER BY created_at", (provider, project_id, project_id))
    return [{**dict(r), "request_keys": json.loads(r["request_keys_json"]), "meta": json.loads(r["meta_json"])}
            for r in rows]


def batch_record(store: Store, batch_id: str, *, provider: str, project_id: int | None, job_id: int | None,
                 keys: list[str], meta: dict) -> None:
    now = time.time()
    with store.tx() as c:
        c.execute("INSERT OR REPLACE INTO llm_batches(id, project_id, job_id, provider, status, request_keys_json,"
                  " meta_json, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?)",
                  (batch_id, project_id, job_id, provider, "submitted", json.dumps(keys), json.dumps(meta), now, now))


def batch_set_status(store: Store, batch_id: str, status: str, meta: dict | None = None) -> None:
    with store.tx() as c:
        if meta is None:
            c.execute("UPDATE llm_batches SET status=?, updated_at=? WHERE id=?", (status, time.time(), batch_id))
        else:
            c.execute("UPDATE llm_batches SET status=?, meta_json=?, updated_at=? WHERE id=?",
                      (status, json.dumps(meta), time.time(), batch_id))
