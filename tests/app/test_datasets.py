"""Datasets page: candidates with scores/reasons/columns, accept/reject/undo and config choice (stored),
leakage exclusions, metadata-only datasets, uploads (size limit, sanitized names), search as a job."""

from __future__ import annotations

from datatune_core import jobs as J
from datatune_ui.jobs import SEARCH_KIND
from datatune_ui.uploads import check_upload, safe_filename

from .conftest import MC_COLUMNS, button, mc_rows, open_app, texts, write_dataset

PAGE = "app_pages/2_Datasets.py"


def _project(store, tmp_path):
    pid = store.create_project("D", "Answer the question with the right word.", [{"input": "q", "output": "a"}],
                               eval_task="temporal_sequences")
    a = write_dataset(tmp_path / "d", "test/mc", mc_rows(20), MC_COLUMNS)
    b = write_dataset(tmp_path / "d", "test/two", mc_rows(10), MC_COLUMNS)
    b.configs.append(type(b.configs[0])(name="hard", columns={"question": "string", "answer": "string"},
                                        splits={"train": 5}, sample_rows=[{"question": "q?", "answer": "a"}],
                                        rows_path=b.configs[0].rows_path))
    store.upsert_candidate(pid, a.id, record=a.to_dict(), config="default", fused_score=0.031, bm25_score=7.5,
                           dense_score=0.61, rerank_rank=1, rerank_votes=5, reason="Questions with [a link](x).")
    store.upsert_candidate(pid, b.id, record=b.to_dict(), config="default", fused_score=0.029, rerank_rank=2)
    meta_only = {"id": "org/meta", "name": "Meta only", "description": "No rows offline.", "source": "huggingface",
                 "configs": [{"name": "default", "columns": {"text": "string"}}]}
    store.upsert_candidate(pid, "org/meta", record=meta_only, config="default", fused_score=0.02)
    store.upsert_candidate(pid, "bigbench/temporal_sequences", record={"id": "bigbench/temporal_sequences"},
                           excluded_reason="same family as the evaluation task temporal_sequences")
    return pid


def test_candidates_show_scores_reasons_columns_and_exclusions(app_home, store, tmp_path):
    pid = _project(store, tmp_path)
    at = open_app(PAGE, project=pid)
    t = texts(at)
    assert "Candidates (3)" in t
    assert "search score 0.0310" in t and "LLM rank 1 (5 votes)" in t
    assert "Columns: answer (string)" in t and "question (string) · 20 rows" in t
    assert r"\[a link\]\(x\)" in t  # LLM text is shown escaped, never as a link
    assert "Only its description is available offline" in t
    assert "Excluded to avoid leaking the evaluation task (1)" in [e.label for e in at.expander]
    acc = [b for b in at.button if b.label == "Accept"]
    assert len(acc) == 3 and acc[2].disabled and not acc[0].disabled
    assert "Accept at least one dataset" in t


def test_accept_reject_undo_and_config_are_stored(app_home, store, tmp_path):
    pid = _project(store, tmp_path)
    at = open_app(PAGE, project=pid)
    button(at, "Accept", 0).click().run()
    assert [c["dataset_id"] for c in store.list_candidates(pid, decision="accepted")] == ["test/mc"]
    button(at, "Reject", 1).click().run()
    assert store.list_candidates(pid, decision="rejected")[0]["dataset_id"] == "test/two"
    cands = {c["dataset_id"]: c for c in store.list_candidates(pid)}
    at.selectbox(key=f"dt_cfg_{pid}_{cands['test/two']['id']}").select("hard").run()
    assert {c["dataset_id"]: c for c in store.list_candidates(pid)}["test/two"]["config"] == "hard"
    assert "Check how the 1 accepted dataset(s)" in texts(at)
    button(at, "Undo").click().run()
    assert store.list_candidates(pid, decision="accepted") == []
    assert not at.exception


def test_upload_is_profiled_and_listed(app_home, store, tmp_path):
    pid = _project(store, tmp_path)
    at = open_app(PAGE, project=pid)
    csv = b"question,answer\nWhat is 2+2?,4\nCapital of France?,Paris\n"
    at.file_uploader[0].upload("../../evil name;rm -rf.csv", csv, "text/csv")
    button(at, "Add to this project").click().run()
    assert not at.exception, at.exception
    assert "Added" in " ".join(s.value for s in at.success)
    up = list((app_home / "uploads").iterdir())
    assert len(up) == 1 and up[0].parent == app_home / "uploads" and "/" not in up[0].name
    assert ".." not in up[0].name and ";" not in up[0].name
    cands = [c for c in store.list_candidates(pid) if c["source"] == "local"]
    assert len(cands) == 1 and cands[0]["record"]["configs"][0]["columns"]


def test_upload_limits_and_names():
    assert safe_filename("../../etc/passwd") == "passwd"
    assert safe_filename("C:\\Users\\x\\data.csv") == "data.csv"
    assert safe_filename("..") == "upload"
    assert safe_filename("a b;c|d.csv") == "a b_c_d.csv"
    import pytest

    from datatune_core.errors import UserError

    with pytest.raises(UserError, match="limited to 1 MB"):
        check_upload("big.csv", 2 * 1024 * 1024, max_mb=1)
    with pytest.raises(UserError, match="cannot be read"):
        check_upload("x.exe", 10, allowed=["csv"])
    with pytest.raises(UserError, match="empty"):
        check_upload("x.csv", 0)


def test_search_starts_a_background_job_with_a_panel(app_home, store, tmp_path):
    pid = _project(store, tmp_path)
    at = open_app(PAGE, project=pid)
    [b for b in at.button if b.label == "Search"][0].click().run()
    jobs = [j for j in store.list_jobs(pid) if j.kind == SEARCH_KIND]
    try:
        assert len(jobs) == 1 and jobs[0].config["top_k"] == 10
        assert f"Job #{jobs[0].id}" in texts(at)
        assert [b for b in at.button if b.label == "Search"][0].disabled  # one search at a time
    finally:
        J.cancel_job(store, jobs[0].id)
        J.kill_job(store, jobs[0].id)
