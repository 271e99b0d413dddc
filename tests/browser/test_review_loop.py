"""The review loop in a real browser, offline: a new user's own task (product reviews, some with abbreviated labels
'pos'/'neg'), transformed on the template path. The user rejects a group of one-word rows, groups the left-out
rows, repairs the 'answer not allowed' group (the answer mapping is tried on the group's rows side by side, then
applied: only those rows are transformed again and now kept) and then the group they rejected (a length rule:
the rows stay rejected, as decided). Screenshots: test-output/screenshots/loop_*.png.
"""

from __future__ import annotations

import time

import pytest

from datatune_core.jobs import start_job
from datatune_core.transformation.pipeline import TransformOptions
from tests.transform.conftest import write_dataset
from tests.transform.test_repair import EXAMPLES, TASK, review_rows

from .harness import select_option, type_into

pytestmark = [pytest.mark.browser]


def wait_source(b, needle: str, timeout_s: float = 60) -> None:
    """Wait for `needle` in the page source (tables and the selected option are not in the body text)."""
    deadline = time.monotonic() + timeout_s
    while needle not in b.d.page_source:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{needle!r} not on the page within {timeout_s} s")
        time.sleep(0.5)


def test_reject_a_group_repair_it_and_see_the_rows_again(offline_studio):
    app, b, store = offline_studio
    pid = store.create_project("My reviews", TASK, EXAMPLES)
    rec = write_dataset(store.home / "data", "my/reviews", review_rows(),
                        {"id": "string", "text": "string", "label": "string"})
    store.upsert_candidate(pid, rec.id, record=rec.to_dict(), config="default", decision="accepted")
    job = start_job(store, "transform", TransformOptions(use_llm=False, target_size=200).to_dict(), project_id=pid,
                    background=False)  # the transform page itself is walked in test_sentiment_walk
    assert store.get_job(job).status == "done"
    broken = [r.id for r in store.list_rows(pid, limit=999) if r.output in ("pos", "neg")]
    assert len(broken) == 6

    # 1. reject a group: the one-word rows (at most 12 characters with the answer)
    b.d.get(f"{app.url}/Transform_Review?project={pid}")
    b.idle()
    type_into(b, "Max. length (0 = none)", "12")
    b.wait_text("3 row(s) match")
    type_into(b, "Note for rejected rows (optional)", "too short")
    b.click("Reject 3")
    b.wait_text("Rejected 3 row(s)")
    short = [r.id for r in store.list_rows(pid, status="rejected", limit=99)]
    assert len(short) == 3
    kept_before = store.count_rows(pid, status="kept")

    # 2. group the left-out rows; the largest group is the 'answer not allowed' one
    try:
        b.click("Group the left-out rows")
    except TimeoutError:  # the first grouping loads the embedding model: slow on a busy machine
        b.idle(timeout_s=120)
    wait_source(b, "Group 1: 6 row(s) of my/reviews: answer not allowed", timeout_s=120)
    # the groups table (an accessible grid) can render a rerun after the first group's title: wait for it too
    wait_source(b, "you rejected them (“too short” 3)", timeout_s=60)
    b.click("Propose a fix")
    b.wait_text("Proposed fix", timeout_s=60)
    assert "Rename the answers 'pos' to 'positive', 'neg' to 'negative'" in b.text()
    b.wait_text("With this fix, 6 of 6 row(s) pass and 0 stay left out.")
    b.shot("loop_01_proposed")
    b.click("Apply the fix")
    b.wait_text("Plan version 2 is saved. 6 of 6 row(s) of the group are now kept.", timeout_s=120)
    b.shot("loop_02_repaired")
    rows = {i: store.get_row(i) for i in broken}
    assert all(r.status == "kept" and r.output in ("positive", "negative") and r.plan_version == 2
               for r in rows.values())
    assert all(store.get_row(i).decision == "rejected" for i in short)

    # 3. the group you rejected: a length rule; your rejections hold
    b.click("Group the left-out rows again")
    select_option(b, "Group to fix", "you rejected them")
    b.click("Propose a fix")
    b.wait_text("Leave out inputs shorter than", timeout_s=60)
    assert "(stays rejected)" not in b.text()  # the rule leaves them out: none of them would pass
    b.click("Apply the fix")
    b.wait_text("Plan version 3 is saved. 0 of 3 row(s) of the group are now kept; 3 carry your own decision",
                timeout_s=120)
    b.shot("loop_03_length_rule")
    assert all(store.get_row(i).decision == "rejected" and store.get_row(i).machine_reason.startswith("length_rule")
               for i in short)
    assert store.count_rows(pid, status="kept") == kept_before + 6  # only the repaired group changed
