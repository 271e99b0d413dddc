"""Two reviewers in two browser sessions judge the same rows; the agreement chart follows their judgments.

Offline Studio (no key). Ana chooses her name on the first visit; the name stays in the address, so her reload
keeps it and Ben's link carries his. Three rows, verdicts (accept = 1, reject = 0) Ana 1 1 0, Ben 1 0 0:
coincidences o11 = 2, o00 = 2, o10 = o01 = 1; n1 = n0 = 3, n = 6; D_o = 2/6, D_e = 2*3*3/(6*5) = 3/5;
Krippendorff's alpha = 1 - (1/3)/(3/5) = 4/9 = 0.44. Screenshots: test-output/screenshots/reviewers_*.png.
"""

from __future__ import annotations

import time

import pytest

from .harness import SHOTS, Browser, type_into

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROWS = [("The battery lasts all day.", "positive"), ("Great screen, and it broke after a week.", "positive"),
        ("Would not buy again.", "negative")]


def _judge(b, steps: list[tuple[str, int]]) -> None:
    """(verdict, rows left in this reviewer's queue afterwards) for each click on the queue card."""
    for v, left in steps:
        b.click("Accept row" if v == "accept" else "Reject row")
        b.wait_text(f"({left} row(s) wait for you)" if left else "Nothing waits for your judgment")


def test_two_reviewers_agreement_chart(offline_studio, tmp_path):
    from datatune_core.store import reviewers as R
    from datatune_core.store import RowRecord

    app, a, store = offline_studio
    pid = store.create_project("Review sentiment", "Classify the sentiment of a product review.")
    store.add_rows(pid, [RowRecord(input=t, output=o, status="kept", dataset_id="bigbench/multiemo", config="en",
                                   source_row_id=f"r{i}", plan_version=1, path="template", run_id="transform-1")
                         for i, (t, o) in enumerate(ROWS)])
    R.set_judgments_needed(store, pid, 2)
    R.set_guidelines(store, pid, "Judge the **output**: is it the review's sentiment? Sarcasm counts as negative.")
    url = f"{app.url}/Transform_Review?project={pid}"
    ids = [r.id for r in store.list_rows(pid)]

    a.d.get(url)  # Ana's first visit: she chooses her name
    a.idle()
    a.wait_text("Who is reviewing?")
    type_into(a, "Your name", "Ana")
    a.click("Start reviewing")
    a.wait_text("Reviewing as Ana · each row needs 2 judgment(s)")
    _judge(a, [("accept", 2), ("accept", 1), ("reject", 0)])
    a.wait_text("No row has two judgments yet")
    assert [(j["row_id"], j["verdict"]) for j in R.judgments(store, pid)] == \
        list(zip(ids, ["accept", "accept", "reject"]))

    b = Browser(tmp_path / "chrome-ben")  # a second browser session, opened from a link with Ben's name
    try:
        b.d.get(url + "&reviewer=Ben")
        b.idle()
        b.wait_text("Reviewing as Ben")
        _judge(b, [("accept", 2), ("reject", 1)])
        b.wait_text("alpha 0.00 over 2 row(s)")  # (1,1), (1,0): n1 = 3, n0 = 1, D_o = 2/4 = D_e: alpha 0
        _judge(b, [("reject", 0)])
        b.wait_text("alpha 0.44 over 3 row(s) with two or more judgments")
        b.wait_text("Rejected\n1")  # the majority rejected row 3: the page's counts follow (a full rerun)
        SHOTS.mkdir(parents=True, exist_ok=True)  # Ben's panel only (a full-page shot re-renders the whole page)
        b.d.find_element("css selector", f".st-key-dt_reviewers_{pid}").screenshot(str(SHOTS / "reviewers_02_ben.png"))
    finally:
        b.quit()
    assert R.agreement(store, pid)["alpha"] == pytest.approx(4 / 9, abs=1e-3)
    assert store.get_row(ids[2]).status == "rejected" and store.get_row(ids[1]).decision is None  # a tie: disputed

    a.d.refresh()  # Ana's reload: her name stays, and her chart shows Ben's judgments too
    a.idle()
    a.wait_text("Reviewing as Ana")
    a.wait_text("alpha 0.44 over 3 row(s)")
    assert "reviewers: Ana, Ben" in a.text() and "Sarcasm counts as negative." in a.text()
    deadline = time.monotonic() + 20
    while not a.d.find_elements("css selector", '[data-testid="stPlotlyChart"]') and time.monotonic() < deadline:
        time.sleep(0.3)
    assert a.d.find_elements("css selector", '[data-testid="stPlotlyChart"]')
    a.shot("reviewers_01_ana")
    panel = a.d.find_element("css selector", f".st-key-dt_reviewers_{pid}")  # the panel alone, for the guide
    a.d.execute_script("arguments[0].scrollIntoView({block: 'start'});", panel)
    panel.screenshot(str(SHOTS / "reviewers_panel.png"))
