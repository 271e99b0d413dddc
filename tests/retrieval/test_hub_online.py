"""The online path for real: `huggingface_hub` and `datasets` against the scripted Hub on 127.0.0.1 (HF_ENDPOINT).

Search -> records (configs from the card, gated noted), rows streamed from parquet shards the test writes, and each
failure a user can meet as one plain sentence: a gated dataset, a missing config, a missing dataset, a slow shard
(retried; past the timeout, a message), 429 / 5xx (retried by the client, then a message), and a malformed reply.
"""

from __future__ import annotations

import pytest

from datatune_core.catalog.records import load_rows
from datatune_core.errors import UserError
from datatune_core.catalog.hub import iter_hub_rows, search_hub, search_terms
from tests.fakes.hub_server import card_text, hub_server, parquet_bytes  # noqa: F401 (fixture)

EN = [{"text": f"a great film, number {i}", "label": i % 2} for i in range(30)]
DE = [{"text": "ein guter Film", "label": 1}, {"text": "ein schlechter Film", "label": 0}]
CARD = card_text({"pretty_name": "Acme movie reviews", "language": ["en", "de"], "license": "mit",
                  "task_categories": ["text-classification"],
                  "configs": [{"config_name": "en", "data_files": [{"split": "train", "path": "en/train-*.parquet"}]},
                              {"config_name": "de", "data_files": [{"split": "train", "path": "de/train-*.parquet"}]}]},
                 "# Acme movie reviews\nShort English and German movie reviews labelled positive (1) / negative (0).")


@pytest.fixture
def hub(hub_server):
    hub_server.add_dataset("acme/movie-reviews", {
        "README.md": CARD, "en/train-00000.parquet": parquet_bytes(EN[:15]),
        "en/train-00001.parquet": parquet_bytes(EN[15:]), "de/train-00000.parquet": parquet_bytes(DE)},
        description="Short English and German movie reviews", downloads=900,
        tags=["task_categories:text-classification", "language:en", "license:mit"])
    hub_server.add_dataset("acme/movie-reviews-gated", {
        "README.md": card_text({"pretty_name": "Gated reviews"}), "data/train-00000.parquet": parquet_bytes(EN[:5])},
        gated="manual", downloads=10)
    hub_server.add_dataset("other/weather", {"data/train.parquet": parquet_bytes([{"t": 1}])}, downloads=5)
    return hub_server


def _one(hub, name="acme/movie-reviews"):
    return next(r for r in search_hub("movie reviews") if r.id == name)


def test_search_builds_records_from_the_hub_answer(hub):
    recs = search_hub("Classify the sentiment of movie reviews")
    assert [r.id for r in recs] == ["acme/movie-reviews", "acme/movie-reviews-gated"]  # by downloads; weather not
    rec = recs[0]
    assert rec.source == "hub" and rec.name == "Acme movie reviews" and rec.license == "mit"
    assert [c.name for c in rec.configs] == ["en", "de"] and rec.languages == ["en", "de"]
    assert "task_categories:text-classification" in rec.tags and not any(t.startswith("license:") for t in rec.tags)
    assert "Gated" in recs[1].notes[0] and not rec.notes
    searched = [e["query"]["search"][0] for e in hub.requests("GET", "/api/datasets")]
    assert searched == search_terms("Classify the sentiment of movie reviews") and "movie" in searched
    assert all(e["query"].get("full") == ["true"] for e in hub.requests("GET", "/api/datasets"))


def test_rows_stream_from_the_parquet_shards_of_a_config(hub):
    rec = _one(hub)
    rows = list(load_rows(rec, "en"))
    assert [r for _, r in rows] == EN and rows[0][0] == "train:0" and rows[-1][0] == "train:29"
    assert [r for _, r in load_rows(rec, "de")] == DE
    assert [i for i, _ in iter_hub_rows(rec, "en", limit=3, offset=20)] == ["train:20", "train:21", "train:22"]
    shards = {e["path"].rsplit("/", 1)[1] for e in hub.requests("GET", "/resolve/") if e["path"].endswith(".parquet")}
    assert shards == {"train-00000.parquet", "train-00001.parquet"}  # en and de shards of the same names
    assert all(e["token"] is None for e in hub.log)  # no token was configured, none was sent


def test_gated_dataset_says_how_to_get_access(hub):
    rec = _one(hub, "acme/movie-reviews-gated")
    with pytest.raises(UserError) as ei:
        list(iter_hub_rows(rec, limit=2))
    msg = str(ei.value)
    assert "gated" in msg and "Request access" in msg and "HF_TOKEN" in msg and "Error" not in msg


def test_gated_dataset_streams_with_a_granted_token(hub, monkeypatch):
    hub.repos[("dataset", "acme/movie-reviews-gated")].granted.add("hf_good")
    monkeypatch.setenv("HF_TOKEN", "hf_good")
    rec = _one(hub, "acme/movie-reviews-gated")
    assert [r for _, r in iter_hub_rows(rec)] == EN[:5]
    assert {e["token"] for e in hub.requests(contains="/resolve/")} == {"hf_good"}


def test_missing_config_names_the_ones_there_are(hub):
    rec = _one(hub)
    with pytest.raises(UserError, match=r"has no config 'fr'.*en, de"):
        list(load_rows(rec, "fr"))  # refused from the record, before any request
    with pytest.raises(UserError) as ei:
        list(iter_hub_rows(rec, "fr"))  # and from the Hub's own card when asked directly
    assert "no config 'fr'" in str(ei.value) and "en, de" in str(ei.value)


def test_missing_dataset_is_a_plain_sentence(hub):
    from datatune_core.catalog.records import DatasetRecord

    gone = DatasetRecord(id="acme/deleted", name="acme/deleted", description="x", source="hub")
    with pytest.raises(UserError) as ei:
        list(iter_hub_rows(gone))
    assert "has no dataset 'acme/deleted'" in str(ei.value) and "Check the name" in str(ei.value)


def test_a_slow_shard_is_retried_and_the_rows_arrive(hub):
    rec = _one(hub)
    hub.fail("en/train-00001.parquet", "slow")  # one answer after the 0.5 s timeout; the client asks again
    assert [r for _, r in iter_hub_rows(rec, "en")] == EN
    assert [e["fault"] for e in hub.requests("GET", "en/train-00001.parquet")][0] == "slow"


def test_a_shard_that_stays_slow_ends_with_a_timeout_message(hub):
    rec = _one(hub)
    hub.fail("en/train-00001.parquet", *["slow"] * 40)
    got, err = [], None
    try:
        for _, row in iter_hub_rows(rec, "en"):
            got.append(row)
    except UserError as e:
        err = str(e)
    assert err and "did not answer within 0.5 s" in err and "DATATUNE_HUB_TIMEOUT" in err
    assert got == EN[:15]  # the first shard's rows arrived before the second one failed


@pytest.mark.parametrize("fault,words", [("500", "server error (500)"), ("503", "server error (503)"),
                                         ("429", "rate-limiting")])
def test_search_retries_server_errors_then_says_what_happened(hub, fault, words):
    hub.fail("/api/datasets", fault)  # one failure: retried after a backoff, then the answer
    assert [r.id for r in search_hub("movie")][0] == "acme/movie-reviews"
    assert hub.sleeps and len(hub.requests("GET", "/api/datasets")) == 2
    hub.fail("/api/datasets", *[fault] * 10)  # it keeps failing: the client gives up, the user reads why
    with pytest.raises(UserError) as ei:
        search_hub("movie")
    assert words in str(ei.value) and "try again" in str(ei.value).lower()


def test_malformed_search_reply_is_a_plain_sentence(hub):
    hub.fail("/api/datasets", "malformed")
    with pytest.raises(UserError) as ei:
        search_hub("movie")
    assert "not readable" in str(ei.value) and "HF_ENDPOINT" in str(ei.value)


def test_unreachable_hub_is_a_plain_sentence(hub, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    hub.sleeps.clear()
    with pytest.raises(UserError) as ei:
        search_hub("movie")
    assert "Could not reach the Hub at http://127.0.0.1:9" in str(ei.value)


def test_offline_mode_is_restored_after_a_hub_call(hub):
    import huggingface_hub.constants as hc

    before = (hc.HF_HUB_OFFLINE, hc.ENDPOINT)
    search_hub("movie")
    assert (hc.HF_HUB_OFFLINE, hc.ENDPOINT) == before


def test_offline_by_default_says_how_to_go_online(monkeypatch):
    monkeypatch.delenv("DATATUNE_HUB_ONLINE", raising=False)
    with pytest.raises(UserError, match="DATATUNE_HUB_ONLINE=1"):
        search_hub("movie")


def test_search_accept_stream_transform_through_the_hub(hub, store):
    """The whole online path: Hub search -> accepted candidate -> rows streamed -> offline template transform."""
    from datatune_core.jobs import JobContext
    from datatune_core.transformation.pipeline import TransformOptions
    from datatune_core.transformation.run import run_transform_job

    words = ["wonderful", "dull", "moving", "awful", "brilliant", "tedious"]
    rows = [{"review": f"A {words[i % 6]} film, review {i}.", "sentiment": "positive" if i % 2 == 0 else "negative"}
            for i in range(24)]
    hub.add_dataset("acme/movie-sentiment", {"data/train-00000.parquet": parquet_bytes(rows)}, downloads=5000)
    pid = store.create_project("hub", "Classify the sentiment of the movie review as positive or negative.",
                               [{"input": "I loved every minute.", "output": "positive"},
                                {"input": "Two hours I will never get back.", "output": "negative"}])
    rec = search_hub(store.get_project(pid).instruction)[0]
    assert rec.id == "acme/movie-sentiment"
    store.upsert_candidate(pid, rec.id, record=rec.to_dict(), config="default", decision="accepted", rerank_rank=1)
    opts = TransformOptions(use_llm=False, target_size=10, probe_size=10, batch_size=8)
    job = store.create_job("transform", opts.to_dict(), project_id=pid)
    res = run_transform_job(JobContext(store=store, job=store.get_job(job)))
    kept = store.list_rows(pid, status="kept", limit=100)
    assert res["kept"] >= 10 and len(kept) >= 10, res
    assert {r.dataset_id for r in kept} == {"acme/movie-sentiment"}
    by_id = {f"train:{i}": r for i, r in enumerate(rows)}
    for r in kept:  # each kept row is its streamed source row, transformed by the template
        src = by_id[r.source_row_id]
        assert src["review"] in r.input and r.output == src["sentiment"]
    assert hub.requests("GET", "acme/movie-sentiment/resolve/")


def test_overlapping_hub_calls_stay_online_until_the_last_ends(hub):
    import huggingface_hub.constants as hc

    from datatune_core.catalog.hub_session import online

    before = hc.HF_HUB_OFFLINE
    rows = iter_hub_rows(_one(hub), "en", limit=2)  # a stream held open (as a transform batch does)
    assert next(rows)[0] == "train:0" and hc.HF_HUB_OFFLINE is False
    with online():
        pass  # another call starts and ends meanwhile
    assert hc.HF_HUB_OFFLINE is False and next(rows)[0] == "train:1"
    rows.close()
    assert hc.HF_HUB_OFFLINE == before
