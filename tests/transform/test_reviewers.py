"""Several reviewers: judgments -> the row's decision, the queue order, agreement on a hand-computed example."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from datatune_core.store import reviewers as R
from datatune_core.errors import UserError
from datatune_core.transformation.mix import curated_rows
from datatune_core.store import RowRecord

OUTPUTS = ["positive", "positive", "negative", "negative", "positive", "negative"]


@pytest.fixture
def pid(store):
    p = store.create_project("rv", "Classify the sentiment of a review as positive or negative.")
    store.add_rows(p, [RowRecord(input=f"Review number {i}: it was {'good' if o == 'positive' else 'bad'}.",
                                 output=o, status="kept", dataset_id="d", config="default", source_row_id=f"r{i}",
                                 plan_version=1, run_id="t-1") for i, o in enumerate(OUTPUTS)])
    return p


def ids(store, pid) -> list[int]:
    return [r.id for r in store.list_rows(pid, limit=100)]


def test_row_decision_rule():
    assert R.row_decision([], 1) is None
    assert R.row_decision(["reject"], 1) == "rejected" and R.row_decision(["accept"], 1) == "accepted"
    assert R.row_decision(["reject"], 2) is None  # pending: fewer judgments than needed
    assert R.row_decision(["reject", "accept"], 2) is None  # a tie: disputed
    assert R.row_decision(["reject", "accept", "reject"], 2) == "rejected"  # strict majority of all judgments
    assert R.row_decision(["accept", "accept", "reject"], 3) == "accepted"


def test_one_reviewer_one_judgment_is_the_grids_decision(store, pid):
    a, b = ids(store, pid)[:2]
    R.judge(store, pid, [a], "Ana", "reject", note="sarcastic")
    R.judge(store, pid, [b], "Ana", "accept")
    ra, rb = store.get_row(a), store.get_row(b)
    assert (ra.status, ra.decision) == ("rejected", "rejected") and "1 of 1: Ana" in ra.reason
    assert (rb.status, rb.decision) == ("kept", "accepted")
    assert a not in {r.id for r in curated_rows(store, pid)}  # training and exports read the decision
    R.judge(store, pid, [a], "Ana", "accept")  # judging again replaces the verdict
    assert store.get_row(a).status == "kept" and len(R.judgments(store, pid, a)) == 1


def test_judgments_needed_majority_and_ties(store, pid):
    a = ids(store, pid)[0]
    R.set_judgments_needed(store, pid, 2)
    R.judge(store, pid, [a], "Ana", "reject")
    assert store.get_row(a).decision is None  # pending: one of two judgments
    R.judge(store, pid, [a], "Ben", "accept")
    assert store.get_row(a).decision is None  # tie: disputed, back in the queue
    assert R.queue(store, pid, "Cy")[-1]["id"] == a  # fewest judgments first: unjudged rows come before it
    R.judge(store, pid, [a], "Cy", "reject")
    r = store.get_row(a)
    assert r.status == "rejected" and "2 of 3: Ana, Cy" in r.reason
    assert a not in {q["id"] for q in R.queue(store, pid, "Dee")}  # decided: out of the queue
    store.edit_row(ids(store, pid)[1], output="negative")  # an edited row stays edited when the majority accepts
    e = ids(store, pid)[1]
    R.judge(store, pid, [e], "Ana", "accept")
    R.judge(store, pid, [e], "Ben", "accept")
    assert (store.get_row(e).status, store.get_row(e).output) == ("edited", "negative")
    assert R.set_judgments_needed(store, pid, 1) >= 0 and store.get_row(a).status == "rejected"
    with pytest.raises(UserError, match="from 1 to 10"):
        R.set_judgments_needed(store, pid, 0)


def test_queue_fewest_judgments_then_most_disagreement(store, pid):
    r0, r1, r2, r3, r4, r5 = ids(store, pid)
    R.set_judgments_needed(store, pid, 3)
    R.judge(store, pid, [r0, r1], "Ana", "accept")
    R.judge(store, pid, [r1], "Ben", "reject")  # r1: 2 judgments, split
    R.judge(store, pid, [r2], "Ana", "accept")
    R.judge(store, pid, [r2], "Ben", "accept")  # r2: 2 judgments, agreeing
    R.judge(store, pid, [r3], "Ben", "reject")
    order = [q["id"] for q in R.queue(store, pid, "Cy")]
    assert order == [r4, r5, r0, r3, r1, r2]  # 0 judgments, then 1, then 2 with the split row first
    assert [q["id"] for q in R.queue(store, pid, "Ana")] == [r4, r5, r3]  # never a row Ana judged already
    assert R.queue(store, pid, "Cy")[-2]["disagreement"] == 0.5


def test_agreement_on_a_hand_computed_example(store, pid):
    """Two reviewers, four rows (accept = 1, reject = 0):

        row        output    Ana  Ben
        r0         positive   1    1
        r1         positive   1    0
        r2         negative   0    0
        r3         negative   1    1

    Krippendorff's alpha (nominal): coincidences o11 = 2+2 = 4 (r0, r3), o00 = 2 (r2), o10 = o01 = 1 (r1);
    n1 = 5, n0 = 3, n = 8. D_o = (o10 + o01) / n = 2/8; D_e = 2 n1 n0 / (n (n-1)) = 30/56;
    alpha = 1 - D_o / D_e = 1 - (1/4)(56/30) = 1 - 14/30 = 8/15 = 0.5333.
    Cohen's kappa: p_o = 3/4; Ana accepts 3/4, Ben 2/4, so p_e = 3/4*2/4 + 1/4*2/4 = 1/2; kappa = (3/4-1/2)/(1/2)
    = 0.5. Per label: positive (r0, r1): o11 = 2, o10 = o01 = 1, n1 = 3, n0 = 1, n = 4; D_o = 2/4,
    D_e = 2*3*1/(4*3) = 1/2, alpha = 0. negative (r2, r3): D_o = 0, so alpha = 1. Observed agreement 3/4 overall,
    1/2 on positive, 1 on negative.
    """
    r0, r1, r2, r3, r4, _ = ids(store, pid)
    R.set_judgments_needed(store, pid, 2)
    for row, ana, ben in ((r0, "accept", "accept"), (r1, "accept", "reject"), (r2, "reject", "reject"),
                          (r3, "accept", "accept")):
        R.judge(store, pid, [row], "Ana", ana)
        R.judge(store, pid, [row], "Ben", ben)
    R.judge(store, pid, [r4], "Ana", "reject")  # one judgment only: not pairable, not in alpha
    ag = R.agreement(store, pid)
    assert ag["reviewers"] == ["Ana", "Ben"] and ag["rows_with_multiple"] == 4 and ag["rows_judged"] == 5
    assert ag["alpha"] == pytest.approx(8 / 15, abs=1e-4) and ag["observed"] == pytest.approx(0.75)
    assert ag["pairs"] == [{"a": "Ana", "b": "Ben", "rows": 4, "kappa": pytest.approx(0.5), "observed": 0.75}]
    by = {x["label"]: x for x in ag["per_label"]}
    assert by["positive"]["alpha"] == pytest.approx(0.0, abs=1e-9) and by["positive"]["observed"] == 0.5
    assert by["negative"]["alpha"] == pytest.approx(1.0) and by["negative"]["observed"] == 1.0
    assert store.get_row(r1).decision is None and store.get_row(r2).status == "rejected"


def test_agreement_undefined_cases(store, pid):
    assert R.agreement(store, pid)["alpha"] is None and "No row has two judgments" in R.agreement(store, pid)["note"]
    a = ids(store, pid)[0]
    R.judge(store, pid, [a], "Ana", "accept")
    R.judge(store, pid, [a], "Ben", "accept")
    ag = R.agreement(store, pid)
    assert ag["alpha"] is None and ag["observed"] == 1.0 and "undefined" in ag["note"]


def test_names_guidelines_and_errors(store, pid):
    assert R.clean_name("  Ana   María ") == "Ana María"
    for bad in ("", "   ", "<script>", "x" * 41):
        with pytest.raises(UserError):
            R.clean_name(bad)
    with pytest.raises(UserError, match="accept' or 'reject"):
        R.judge(store, pid, ids(store, pid)[:1], "Ana", "maybe")
    with pytest.raises(UserError, match="No row with id 999"):
        R.judge(store, pid, [999], "Ana", "accept")
    assert R.set_guidelines(store, pid, "  Sarcasm counts as negative.\n") == "Sarcasm counts as negative."
    assert R.guidelines(store, pid) == "Sarcasm counts as negative."
    with pytest.raises(UserError, match="under 20,000"):
        R.set_guidelines(store, pid, "x" * 20_001)


def test_cli_judge_queue_agreement(store, pid):
    from datatune_core.cli import app

    run = CliRunner().invoke
    r0, r1 = ids(store, pid)[:2]
    assert run(app, ["rows", "judgments-needed", "rv", "2", "--json"]).exit_code == 0
    for who, verdicts in (("Ana", ("accept", "reject")), ("Ben", ("accept", "accept"))):
        for row, v in zip((r0, r1), verdicts):
            res = run(app, ["rows", "judge", "rv", str(row), "--reviewer", who, "--verdict", v, "--json"])
            assert res.exit_code == 0, res.output
    res = run(app, ["rows", "agreement", "rv", "--json"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.output)
    assert got["reviewers"] == ["Ana", "Ben"] and got["rows_with_multiple"] == 2
    # r0 (1, 1) and r1 (1, 0): o11 = 2, o10 = o01 = 1; n1 = 3, n0 = 1, n = 4; D_o = 2/4, D_e = 6/12: alpha = 0
    assert got["alpha"] == pytest.approx(0.0, abs=1e-9)
    q = json.loads(run(app, ["rows", "queue", "rv", "--reviewer", "Cy", "--json"]).output)
    assert q[-1]["id"] == r1 and r0 not in [x["id"] for x in q]
    res = run(app, ["rows", "guidelines", "rv", "--set", "Irony is negative."])
    assert res.exit_code == 0 and R.guidelines(store, pid) == "Irony is negative."
    bad = run(app, ["rows", "judge", "rv", str(r0), "--reviewer", "Ana", "--verdict", "perhaps"])
    assert bad.exit_code != 0
