"""Evaluate page: the project's test set, base vs tuned table and chart (bars visible at 0), the side-by-side view
filtered to fixed / broken rows; Train page: blocked with the rows when they leak test data."""

from __future__ import annotations

from datatune_core.store import RowRecord
from tests.train.minibench import write_minibench

from .conftest import button, open_app, texts

EVAL = "app_pages/6_Evaluate_Export.py"
TRAIN = "app_pages/5_Train.py"


def _reviews(store) -> int:
    pid = store.create_project("Review sentiment", "Classify the review as positive or negative.",
                               examples=[{"input": "Loved it.", "output": "positive"}])
    rows = [(f"The {t} was {a}.", "positive") for t in ("plot", "cast", "music", "ending", "script")
            for a in ("great", "superb", "lovely", "fun")]
    rows += [(f"The {t} felt {a} to me.", "negative") for t in ("plot", "cast", "music", "ending", "script")
             for a in ("dull", "awful")]
    store.add_rows(pid, [RowRecord(input=i, output=o, status="kept", source_row_id=str(k))
                         for k, (i, o) in enumerate(rows)])
    return pid


def _result(store, pid, variant, preds):
    exs = [{"index": i, "input": f"review {i}", "expected": "positive", "prediction": p,
            "score": float(p == "positive")} for i, p in enumerate(preds)]
    score = sum(e["score"] for e in exs) / len(exs)
    store.add_eval_result(task="project", model="SmolLM2", n=len(exs), score=score,
                          normalized_score=0.0 if variant == "tuned" else -50.0,
                          adapter="/x/adapter" if variant == "tuned" else None, project_id=pid,
                          details={"variant": variant, "prompt_style": "chat", "examples": exs})


def test_hold_out_a_test_set_from_the_page(app_home, store):
    pid = _reviews(store)
    at = open_app(EVAL, project=pid)
    assert "No test set yet" in texts(at)
    button(at, "Hold out curated rows").click().run()
    assert not at.exception, at.exception
    t = texts(at)
    assert "6 rows, held out from your curated rows (never trained on); scored as labels negative, positive" in t
    assert "only 6 rows" in t  # the size warning


def test_table_chart_visible_at_zero_and_side_by_side_filters(app_home, store):
    pid = _reviews(store)
    _result(store, pid, "base", ["negative", "positive", "negative", "positive"])
    _result(store, pid, "tuned", ["positive", "positive", "negative", "negative"])
    at = open_app(EVAL, project=pid)
    assert not at.exception
    import json

    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    bars = {tr["name"]: tr for tr in fig["data"] if tr.get("type") == "bar"}
    assert bars["fine-tuned"]["y"] == [1.0] and bars["fine-tuned"]["text"] == ["+0.0"]  # 0 drawn 1 point tall
    assert bars["base model"]["y"] == [-50.0]
    df = at.dataframe[0].value
    assert list(df["task"]) == ["your test set"] and list(df["gain"]) == [50.0]
    side = at.dataframe[1].value
    assert list(side.columns)[:5] == ["row", "input", "expected", "base answer", "tuned answer"] and len(side) == 4
    at.radio(key=f"dt_flt_{pid}").set_value("tuned fixed it").run()
    fixed = at.dataframe[1].value
    assert list(fixed["row"]) == [1] and list(fixed["tuned right"]) == ["\u2713 right"]
    at.radio(key=f"dt_flt_{pid}").set_value("tuned broke it").run()
    assert list(at.dataframe[1].value["row"]) == [4]
    assert "1 of 4 rows" in texts(at)


def test_train_page_blocks_a_leaking_set_and_names_the_row(app_home, store, tmp_path, monkeypatch):
    root = write_minibench(tmp_path / "bigbench")
    monkeypatch.setenv("DATATUNE_BIGBENCH_DIR", str(root))
    pid = store.create_project("Colors", "Name the color.", eval_task="mini_colors")
    store.add_rows(pid, [RowRecord(input="Tell me the color of a lime.", output="green", status="kept",
                                   source_row_id="0"),
                         RowRecord(input="Question: What color is the grass?\nOptions:\n- green\n- red",
                                   output="green", status="kept", source_row_id="1")])
    at = open_app(TRAIN, project=pid)
    t = texts(at)
    assert "Training is blocked" in t and "equals test input 1 of mini_colors" in t
    leak_id = store.list_rows(pid, limit=10)[-1].id
    assert f"row #{leak_id}" in t
    start = [b for b in at.button if b.label == "Start training"][0]
    assert start.disabled and "contain test data" in (start.help or "")
