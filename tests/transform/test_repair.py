"""Plan repair: left-out rows clustered by reason and content (MiniLM), a fix proposed offline (answer mapping,
a column the template missed, a length rule) or by the strong LLM over the wire (scripted Messages-API server),
dry-run side by side, applied as a new plan version that re-transforms only the cluster's rows, decisions kept."""

from __future__ import annotations

import json

import pytest

from datatune_core.jobs import start_job
from datatune_core.transformation.plan import load_plan
from datatune_core.transformation.repair import apply_fix, dry_run_fix, save_fix
from datatune_core.transformation.repair_clusters import cluster_rows, get_cluster
from datatune_core.transformation.repair_fixes import guess_label, propose_fix
from datatune_core.transformation.schema import ColumnMapping, save_mapping
from datatune_core.transformation.pipeline import TransformOptions

from .conftest import write_dataset

TASK = "Classify the sentiment of a product review as positive or negative."
EXAMPLES = [{"input": "Love it, works perfectly.", "output": "positive"},
            {"input": "Broke after two days.", "output": "negative"},
            {"input": "Great value, would buy again.", "output": "positive"}]
GOOD = ["The kettle boils fast and looks lovely on the counter", "The headphones died after a week of light use",
        "Sturdy chair, easy to assemble, very comfortable to sit in", "The phone case cracked the first time I dropped it",
        "Bright lamp with a warm colour, exactly what I wanted", "Terrible battery life, it barely lasts an hour",
        "Soft towels that stay fluffy after many washes", "The zipper on this jacket broke within a few days",
        "Fast shipping and the blender is powerful enough for ice", "Cheap plastic that smells awful out of the box"]
BROKEN = ["Best vacuum I have owned, it picks up everything", "The printer jams on every second page I print",
          "Comfortable running shoes with great grip on wet roads", "The toaster burns one side and leaves the other cold",
          "Lovely scent, this candle fills the whole room", "The umbrella flipped inside out in a light wind"]
SPAM = ["Buy cheap watches now at discount-watches dot com, best prices online",
        "Cheap watches for sale, visit discount-watches dot com today for the best prices",
        "Best prices on cheap watches online: discount-watches dot com",
        "Visit discount-watches dot com now, cheap watches at the best prices"]
SHORT = ["ok", "meh", "fine"]


def review_rows() -> list[dict]:
    rows = [{"id": f"g{i}", "text": t + f" (order {i}).", "label": ["positive", "negative"][i % 2]}
            for i, t in enumerate(GOOD * 2)]
    rows += [{"id": f"b{i}", "text": t + ".", "label": ["pos", "neg"][i % 2]} for i, t in enumerate(BROKEN)]
    rows += [{"id": f"s{i}", "text": t, "label": "positive"} for i, t in enumerate(SPAM)]
    rows += [{"id": f"t{i}", "text": t, "label": "negative"} for i, t in enumerate(SHORT)]
    return rows


def make_project(store, tmp_path, rows=None, name="rv", columns=None) -> int:
    pid = store.create_project(name, TASK, EXAMPLES)
    rec = write_dataset(tmp_path / f"data-{name}", "my/reviews", rows or review_rows(),
                        columns or {"id": "string", "text": "string", "label": "string"})
    store.upsert_candidate(pid, rec.id, record=rec.to_dict(), config="default", decision="accepted")
    return pid


def transform(store, pid, **kw) -> dict:
    """An offline transform job run here (kind "transform", status done)."""
    o = TransformOptions(use_llm=False, target_size=200, **kw)
    job = store.get_job(start_job(store, "transform", o.to_dict(), project_id=pid, background=False))
    assert job.status == "done", job.error
    return job.result


def ids_where(store, pid, prefix: str) -> list[int]:
    return sorted(r.id for r in store.list_rows(pid, limit=999) if json.loads(json.dumps(r.source_json or {}))
                  and r.source_json.get("text", "").startswith(prefix))


def by_text(store, pid, texts) -> list[int]:
    want = set(texts)
    return sorted(r.id for r in store.list_rows(pid, limit=999) if (r.machine_input or "").rstrip(".") in want
                  or (r.machine_input or "") in want)


@pytest.fixture
def reviewed(store, tmp_path):
    """Reviews transformed offline (template path): 6 rows answer 'pos'/'neg' (filtered); the user rejects the
    4 spam rows ("spam") and the 3 one-word rows ("too short")."""
    pid = make_project(store, tmp_path)
    res = transform(store, pid)
    assert res["datasets"][0]["path"] == "template"
    spam, short = by_text(store, pid, SPAM), by_text(store, pid, SHORT)
    assert len(spam) == 4 and len(short) == 3
    store.set_row_status(spam, "rejected", "user_rejected: spam")
    store.set_row_status(short, "rejected", "user_rejected: too short")
    broken = sorted(r.id for r in store.list_rows(pid, limit=999) if r.machine_output in ("pos", "neg"))
    assert len(broken) == 6 and all(store.get_row(i).status == "filtered" for i in broken)
    return pid, broken, spam, short


def test_clusters_by_reason_and_content(store, reviewed):
    pid, broken, spam, short = reviewed
    clusters = cluster_rows(store, pid)
    groups = {tuple(c.row_ids): c for c in clusters}
    assert tuple(broken) in groups and groups[tuple(broken)].code == "label_not_in_space"
    assert tuple(spam) in groups and tuple(short) in groups  # both rejected by you, told apart by content
    assert groups[tuple(spam)].code == groups[tuple(short)].code == "user_rejected"
    assert groups[tuple(spam)].notes == {"spam": 4} and groups[tuple(spam)].by_you == 4
    lab = groups[tuple(broken)]
    assert lab.outputs == {"pos": 3, "neg": 3} and "answer not allowed" in lab.title and len(lab.examples) == 3
    assert [c.id for c in clusters] == list(range(1, len(clusters) + 1))
    assert [(c.id, c.row_ids) for c in cluster_rows(store, pid)] == [(c.id, c.row_ids) for c in clusters]  # stable
    with pytest.raises(Exception, match="numbered 1 to"):
        get_cluster(clusters, 99)


def test_guess_label():
    labels = ["positive", "negative"]
    assert [guess_label(x, labels) for x in ("pos", "Neg.", "POSITIVE", "positiv", "neutral")] == \
        ["positive", "negative", "positive", "positive", None]


def test_offline_label_map_repairs_only_the_cluster_and_is_idempotent(store, reviewed):
    pid, broken, spam, short = reviewed
    cluster = next(c for c in cluster_rows(store, pid) if c.row_ids == broken)
    before = {r.id: (r.revision, r.plan_version, r.status) for r in store.list_rows(pid, limit=999)}
    fix = propose_fix(store, pid, cluster)
    assert fix.kind == "label_map" and fix.author == "heuristic"
    assert fix.plan["label_map"] == {"pos": "positive", "neg": "negative"} and "'pos' to 'positive'" in fix.summary
    dry = dry_run_fix(store, pid, cluster, fix)
    assert dry["counts"] == {"fixed": 6, "still_left_out": 0, "stay_rejected": 0, "rows": 6}
    assert {(x["before"]["output"], x["after"]["output"], x["before"]["status"], x["after"]["status"])
            for x in dry["rows"]} == {("pos", "positive", "filtered", "kept"), ("neg", "negative", "filtered", "kept")}
    assert store.get_row(broken[0]).output in ("pos", "neg")  # the dry run wrote nothing
    job = store.get_job(apply_fix(store, pid, cluster, fix, background=False))
    assert job.status == "done", job.error
    assert job.result["now_kept"] == 6 and job.result["plan_version"] == 2
    after = {r.id: r for r in store.list_rows(pid, limit=999)}
    for i, (rev, pv, st) in before.items():
        if i in broken:
            assert (after[i].revision, after[i].plan_version, after[i].status) == (2, 2, "kept")
            assert after[i].output in ("positive", "negative")
        else:  # every other row keeps its transformation; your rejections hold
            assert (after[i].revision, after[i].plan_version, after[i].status) == (rev, pv, st)
    assert all(after[i].status == "rejected" and after[i].decision == "rejected" for i in spam + short)
    plan, v = load_plan(store, pid, "my/reviews", "default")
    assert v == 2 and plan.author == "repair" and plan.repairs[0]["kind"] == "label_map"
    # run again: the cluster is gone, the same fix saves no new version and changes no row
    assert all(c.row_ids != broken for c in cluster_rows(store, pid))
    assert save_fix(store, pid, cluster, fix)[:2] == (2, 1) and not save_fix(store, pid, cluster, fix)[2]
    job2 = store.get_job(apply_fix(store, pid, cluster, fix, background=False))
    assert job2.result["written"]["unchanged"] == 6 and job2.result["written"]["revised"] == 0
    assert len(store.plan_versions(pid, "my/reviews", "default")) == 2
    # a continue run keeps the mapping for rows still to come, and the decisions still hold
    assert store.count_rows(pid, status="rejected") == 7


def test_length_rule_for_rows_you_rejected_keeps_the_rejection_unless_reopened(store, reviewed):
    pid, broken, spam, short = reviewed
    cluster = next(c for c in cluster_rows(store, pid) if c.row_ids == short)
    fix = propose_fix(store, pid, cluster)
    assert fix.kind == "length_rule" and fix.plan["min_input_chars"] and 4 < fix.plan["min_input_chars"] <= 30
    dry = dry_run_fix(store, pid, cluster, fix)
    assert dry["counts"]["still_left_out"] == 3
    assert all(x["after"]["status"] == "filtered" and "length rule" in x["after"]["reason"] for x in dry["rows"])
    job = store.get_job(apply_fix(store, pid, cluster, fix, reopen=True, background=False))
    assert job.status == "done" and job.result["reopened"] == 0  # the rule leaves them out: nothing to release
    assert all(store.get_row(i).decision == "rejected" for i in short)
    assert all(store.get_row(i).machine_reason.startswith("length_rule:") for i in short)
    # no kept row is shorter than the rule; all 20 GOOD rows are kept (their "(order i)" pairs are at Jaccard
    # 0.81-0.84, under the validator's 0.9: the LSH-only check before the shared definition dropped one, g11)
    assert store.count_rows(pid, status="kept") == 20


def test_template_field_missed_and_reopen(store, tmp_path):
    rows = [{"id": f"r{i}", "review": t, "title": f"Title {i}: {t[:25]}", "label": ["positive", "negative"][i % 2]}
            for i, t in enumerate(GOOD)]
    rows += [{"id": f"e{i}", "review": "", "title": t, "label": ["positive", "negative"][i % 2]}
             for i, t in enumerate(BROKEN[:4])]
    pid = make_project(store, tmp_path, rows, columns={"id": "string", "review": "string", "title": "string",
                                                       "label": "string"})
    save_mapping(store, pid, ColumnMapping("my/reviews", "default", {"id": "irrelevant", "review": "input",
                                                                     "title": "irrelevant", "label": "output"},
                                           author="user"))
    transform(store, pid)
    empty = sorted(r.id for r in store.list_rows(pid, limit=99) if r.status == "rejected")
    assert len(empty) == 4 and all("empty" in store.get_row(i).reason for i in empty)
    store.set_row_status(empty[:1], "rejected", "user_rejected: no text")  # one of them you reject yourself
    cluster = next(c for c in cluster_rows(store, pid) if c.code == "empty_field")
    assert cluster.row_ids == empty[1:]
    fix = propose_fix(store, pid, cluster)
    assert fix.kind == "template_field" and fix.details["column"] == "title" and fix.roles["title"] == "input"
    dry = dry_run_fix(store, pid, cluster, fix)
    assert dry["counts"]["fixed"] == 3 and {x["after"]["input"] for x in dry["rows"]} == set(BROKEN[1:4])
    job = store.get_job(apply_fix(store, pid, cluster, fix, background=False))
    assert job.status == "done" and job.result["now_kept"] == 3
    assert len(store.mapping_versions(pid, "my/reviews", "default")) == 2
    assert store.get_row(empty[0]).decision == "rejected"  # not in the cluster: untouched
    kept_inputs = {r.input for r in store.list_rows(pid, status="kept", limit=99)}
    assert set(BROKEN[1:4]) <= kept_inputs and set(GOOD) <= kept_inputs  # the other rows are as they were


def test_llm_repair_over_the_wire(store, reviewed):
    from datatune_core.store.curation import edit
    from datatune_core.llm import get_client, make_provider
    from tests.fakes.messages_server import MessagesServer

    pid, broken, spam, short = reviewed
    edit(store, broken[0], output="positive" if store.get_row(broken[0]).output == "pos" else "negative")
    cluster = next(c for c in cluster_rows(store, pid) if c.code == "label_not_in_space")
    assert cluster.row_ids == broken[1:]
    seen = []
    new_out = ("{% if label == 'pos' %}positive{% elif label == 'neg' %}negative{% else %}{{ label }}{% endif %}")

    def responder(req):
        props = set(((req.get("tools") or [{}])[0].get("input_schema") or {}).get("properties", {}))
        if "label_map" in props:
            seen.append(json.dumps(req))
            return {"explanation": "The source labels are abbreviated; the output template now spells them out.",
                    "template_output": new_out}
        return "not json"

    with MessagesServer(responder=responder) as srv:
        client = get_client(provider=make_provider("anthropic", api_key=srv.api_key, base_url=srv.url),
                            use_cache=False)
        fix = propose_fix(store, pid, cluster, client=client)
    assert fix.kind == "llm" and fix.author == "llm" and fix.details["changed"] == ["template"]
    assert fix.plan["template"]["output"] == new_out and "abbreviated" in fix.summary
    prompt = seen[0]
    assert BROKEN[1] in prompt and '"reviewer": "positive"' in prompt.replace('\\"', '"')  # rows + your edit
    dry = dry_run_fix(store, pid, cluster, fix)  # the template path needs no LLM call
    assert dry["counts"]["fixed"] == 5
    job = store.get_job(apply_fix(store, pid, cluster, fix, background=False))
    assert job.status == "done" and job.result["now_kept"] == 5
    assert store.get_row(broken[0]).decision == "edited"  # your edit holds
    assert {store.get_row(i).output for i in broken[1:]} == {"positive", "negative"}


def test_llm_reply_unusable_falls_back_to_the_heuristic(store, reviewed):
    from datatune_core.llm import get_client, make_provider
    from tests.fakes.messages_server import MessagesServer

    pid, broken, *_ = reviewed
    cluster = next(c for c in cluster_rows(store, pid) if c.row_ids == broken)
    with MessagesServer(responder=lambda req: "Sorry, no JSON today.") as srv:
        client = get_client(provider=make_provider("anthropic", api_key=srv.api_key, base_url=srv.url),
                            use_cache=False)
        fix = propose_fix(store, pid, cluster, client=client)
    assert fix.kind == "label_map" and "could not be used" in fix.details["llm"]
