"""Datasets: search the catalogs (background job), see ranked candidates with scores, reasons, columns and
sample rows, accept/reject and pick a config, see what was excluded for leakage, add a local file."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from datatune_ui import datasets as D
from datatune_ui import state, widgets
from datatune_ui.errors import guard
from datatune_ui.jobs import SEARCH_KIND
from datatune_ui.uploads import DATASET_TYPES, MAX_UPLOAD_MB

widgets.header(
    "Find datasets",
    "The Studio searches dataset catalogs for data whose rows can be turned into examples of your task, ranks "
    "them by words, meaning and your examples (a capable language model can rerank them), and explains each "
    "rank. Accept the ones that fit.",
    step=2,
)
p = widgets.require_project()
pid = p.id
store = state.get_store()

# ------------------------------------------------------------------------------------------ search
idx = D.index_state(store)
index_job = widgets.latest_job(pid, "index")
search_job = widgets.latest_job(pid, SEARCH_KIND)
busy = [j for j in (index_job, search_job) if j is not None and j.status in widgets.LIVE_STATES]

with st.container(border=True):
    with st.form(f"dt_search_{pid}", border=False):
        query = st.text_area("What should the data be about?", value=D.default_query(p), height=100,
                             help="Starts as your task and examples; edit it to steer the search.")
        c1, c2, _ = st.columns([1, 2, 2])
        top_k = c1.number_input("Candidates", min_value=1, max_value=50, value=10)
        no_rerank = D.rerank_unavailable(p)
        rerank = c2.toggle("Rerank with the language model", value=no_rerank is None, disabled=no_rerank is not None,
                           help=no_rerank or "Asks the model (5 votes) which datasets fit best and why.")
        if no_rerank:
            c2.caption(f":material/block: {no_rerank}")
            rerank = False
        why = f"Job #{busy[0].id} ({busy[0].kind.split(':')[-1]}) is still running." if busy else None
        go = st.form_submit_button("Search", type="primary", icon=":material/search:", disabled=why is not None,
                                   help=why)
        if why:
            st.caption(f":material/block: {why}")
    if go:
        with guard("Could not start the search"):
            D.start_search(store, pid, query, top_k=int(top_k), rerank=rerank)
            st.rerun()
    state_line = {"ready": ":material/check_circle: Search index up to date",
                  "stale": ":material/update: A catalog changed; the next search updates the index",
                  "missing": ":material/info: The search index is built on the first search (a few minutes "
                             "on a small CPU) — or build it now"}.get(idx.get("state"), idx.get("message", ""))
    s1, s2 = st.columns([4, 1], vertical_alignment="center")
    s1.caption(f"{state_line} · catalogs: {len(idx.get('catalogs') or [])}")
    if idx.get("state") in ("missing", "stale"):
        with s2:
            if widgets.button("Build index", key=f"dt_idx_{pid}", icon=":material/build:",
                              disabled_reason=why, help="Builds the search index as a background job."):
                with guard("Could not start the index build"):
                    D.start_index(store, pid)
                    st.rerun()

for j in (index_job, search_job):
    if j is not None and (j.status not in ("done",) or j.id in {b.id for b in busy}):
        widgets.job_panel(j.id, key=f"ds{j.id}")

# ------------------------------------------------------------------------------------------ candidates
ranked, excluded = D.candidates(store, pid)
n_acc = sum(1 for c in ranked if c["decision"] == "accepted")
st.subheader(f"Candidates ({len(ranked)})" + (f" · {n_acc} accepted" if n_acc else ""))
if not ranked:
    st.info("No candidates yet: press Search above.", icon=":material/info:")
for i, c in enumerate(ranked, 1):
    rec = c["record"] or {}
    configs = [x.get("name") for x in rec.get("configs") or [] if x.get("name")]
    dec = c["decision"]
    with st.container(border=True):
        head, act = st.columns([5, 2], vertical_alignment="top")
        with head:
            badge = {"accepted": " :green-badge[accepted]", "rejected": " :red-badge[rejected]"}.get(dec, "")
            st.markdown(f"**{i}. {D.md_escape(rec.get('name') or c['dataset_id'])}**{badge}  \n"
                        f"`{c['dataset_id']}` · {D.md_escape(rec.get('source') or c.get('source') or '')}"
                        + (f" · licence {D.md_escape(rec.get('license'))}" if rec.get("license") else ""))
            scores = []
            if c.get("fused_score") is not None:
                scores.append(f"search score {c['fused_score']:.4f}")
            if c.get("bm25_score") is not None:
                scores.append(f"BM25 {c['bm25_score']:.2f}")
            if c.get("dense_score") is not None:
                scores.append(f"dense {c['dense_score']:.3f}")
            if c.get("rerank_rank") is not None:
                scores.append(f"LLM rank {c['rerank_rank']}" + (f" ({c['rerank_votes']} votes)"
                                                               if c.get("rerank_votes") else ""))
            st.caption(" · ".join(scores))
            if c.get("reason"):
                st.markdown(f":material/psychology: *Why (language model):* {D.md_escape(c['reason'])}")
            why_search = (rec.get("search_explanation") or {}).get("summary")
            if why_search:
                st.markdown(f":material/search: *Why (search):* {D.md_escape(why_search)}")
                with st.expander("How the search ranked it"):
                    for line in D.explanation_lines(rec):
                        st.caption(D.md_escape(line))
            desc = rec.get("description") or ""
            st.caption(D.md_escape(desc[:400] + ("…" if len(desc) > 400 else "")))
            tags = [t for t in rec.get("tags") or []][:12]
            if tags:
                st.caption("Tags: " + D.md_escape(", ".join(tags)))
        with act:
            cur_cfg = c.get("config") if c.get("config") in configs else (configs[0] if configs else None)
            if len(configs) > 1:
                cfg = st.selectbox("Config", configs, index=configs.index(cur_cfg), key=f"dt_cfg_{pid}_{c['id']}",
                                   help="Which subset of the dataset to use.")
                if cfg != c.get("config"):
                    with guard("Could not save the config"):
                        D.set_config(store, pid, c["dataset_id"], cfg)
                        st.rerun()
            else:
                cfg = cur_cfg
            b1, b2 = st.columns(2)
            no_rows = D.rows_unavailable(rec)
            if dec != "accepted":
                if b1.button("Accept", key=f"dt_acc_{pid}_{c['id']}", type="primary", icon=":material/check:",
                             disabled=no_rows is not None, help=no_rows):
                    with guard("Could not accept the dataset"):
                        D.decide(store, pid, c["dataset_id"], "accepted", cfg)
                        st.rerun()
            else:
                if b1.button("Undo", key=f"dt_undo_{pid}_{c['id']}", icon=":material/undo:",
                             help="Back to undecided."):
                    with guard("Could not change the decision"):
                        D.decide(store, pid, c["dataset_id"], "pending")
                        st.rerun()
            if dec != "rejected":
                if b2.button("Reject", key=f"dt_rej_{pid}_{c['id']}", icon=":material/close:"):
                    with guard("Could not reject the dataset"):
                        D.decide(store, pid, c["dataset_id"], "rejected")
                        st.rerun()
        if no_rows:
            st.caption(f":material/cloud_off: {no_rows}")
        cinfo = next((x for x in rec.get("configs") or [] if x.get("name") == cfg), None)
        if cinfo:
            cols = cinfo.get("columns") or {}
            size = sum((cinfo.get("splits") or {}).values()) or cinfo.get("full_size")
            st.caption("Columns: " + ", ".join(f"{D.md_escape(k)} ({D.md_escape(v)})" for k, v in cols.items())
                       + (f" · {size:,} rows" if size else ""))
            if cinfo.get("sample_rows"):
                with st.expander("Sample rows"):
                    st.dataframe(pd.DataFrame([{k: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
                                                for k, v in r.items()} for r in cinfo["sample_rows"][:3]]),
                                 hide_index=True, width="stretch")

if excluded:
    with st.expander(f"Excluded to avoid leaking the evaluation task ({len(excluded)})"):
        st.caption(f"Evaluation task: {p.eval_task or '–'}. These datasets are never used for training.")
        st.dataframe(pd.DataFrame([{"dataset": c["dataset_id"], "why": c["excluded_reason"]} for c in excluded]),
                     hide_index=True, width="stretch")

# ------------------------------------------------------------------------------------------ local file
with st.expander("Add a local file (CSV, TSV, JSON, JSONL, Parquet, Excel)"):
    with st.form(f"dt_upload_{pid}", clear_on_submit=True, border=False):
        up = st.file_uploader(f"Data file (up to {MAX_UPLOAD_MB} MB)", type=DATASET_TYPES,
                              max_upload_size=MAX_UPLOAD_MB,
                              help="It is copied into your workspace and profiled (columns, sample rows).")
        name = st.text_input("Name (optional)")
        desc = st.text_area("What is in it? (optional, helps planning)", height=70)
        add = st.form_submit_button("Add to this project", icon=":material/upload_file:")
    if add:
        if up is None:
            st.warning("Choose a file first.", icon=":material/upload_file:")
        else:
            with guard("Could not add the file"):
                rec = D.upload_local(store, pid, up, name, desc)
                st.session_state[f"dt_upload_msg_{pid}"] = (f"Added {rec['name']} "
                                                           f"({len(rec.get('configs') or [])} config). Accept it "
                                                           "in the list above.")
                st.rerun()  # the new candidate shows in the list at once
    if msg := st.session_state.pop(f"dt_upload_msg_{pid}", None):
        st.success(msg, icon=":material/check:")

if not n_acc:
    widgets.next_hint("Press **Search**, then accept the datasets that fit your task." if not ranked else
                      "Accept at least one dataset that fits your task.")
else:
    widgets.next_step("app_pages/3_Plan.py", f"Check how the {n_acc} accepted dataset(s) will be transformed.")
