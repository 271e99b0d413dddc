"""AppTest helpers: a private DATATUNE_HOME per test and the app started through its real navigation."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")


@pytest.fixture
def app_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test's private DATATUNE_HOME (tests/conftest.py `home`), with the repository as working directory."""
    monkeypatch.chdir(ROOT)
    return home


def open_app(page: str | None = None, project: int | None = None, timeout: float = 60) -> AppTest:
    """Run app.py (navigation + sidebar) and switch to `page`, optionally with ?project=ID in the URL."""
    at = AppTest.from_file(APP, default_timeout=timeout)
    if project is not None:
        at.query_params["project"] = str(project)
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    """Everything visible as text (titles, markdown, captions, alerts, labels, help) joined, for asserts."""
    parts: list[str] = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "info", "warning", "error", "success",
                 "code", "text"):
        for el in getattr(at, kind):
            parts.append(str(getattr(el, "value", "") or getattr(el, "body", "")))
    for kind in ("button", "text_input", "text_area", "selectbox", "radio", "number_input", "toggle", "checkbox"):
        for el in getattr(at, kind):
            parts.append(str(getattr(el, "label", "")))
            parts.append(str(getattr(el, "help", "") or ""))
            try:
                parts.append(str(el.value))
            except Exception:
                pass
    for el in at.metric:
        parts.append(f"{el.label}: {el.value}")
    for el in at.sidebar.markdown:
        parts.append(str(el.value))
    return "\n".join(parts)


def button(at: AppTest, label: str, nth: int = 0):
    found = [b for b in at.button if b.label == label]
    assert found, f"no button {label!r}; have {[b.label for b in at.button]}"
    return found[nth]


# ------------------------------------------------------------------------------------ tiny hand-written data
WORDS = ["river", "planet", "violin", "glacier", "harbor", "meadow", "lantern", "canyon", "orchard", "comet"]


def mc_rows(n: int) -> list[dict]:
    return [{"id": f"r{i}", "question": f"Question {i}: which word names the {WORDS[i % 10]} in story {i * 7}?",
             "choices": [WORDS[i % 10], WORDS[(i + 3) % 10], WORDS[(i + 5) % 10]], "answer": WORDS[i % 10]}
            for i in range(n)]


MC_COLUMNS = {"id": "string", "question": "string", "choices": "list[string]", "answer": "string"}


def write_dataset(dirpath: Path, dataset_id: str, rows: list[dict], columns: dict[str, str]):
    import json

    from datatune_core.catalog.records import ConfigInfo, DatasetRecord

    dirpath.mkdir(parents=True, exist_ok=True)
    f = dirpath / f"{dataset_id.replace('/', '_')}.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    cfg = ConfigInfo(name="default", columns=columns, splits={"train": len(rows)}, sample_rows=rows[:3],
                     rows_path=str(f))
    return DatasetRecord(id=dataset_id, name=dataset_id, description=f"Hand-written test data {dataset_id}.",
                         source="local", tags=["test", "multiple-choice"], configs=[cfg],
                         catalog_path=str(dirpath / "catalog.jsonl"))


def add_rows(store, pid: int, n: int, dataset_id: str = "test/mc", every_rejected: int = 5) -> None:
    """n stored rows as a transform would leave them: some rejected with reasons, with provenance."""
    from datatune_core.store import RowRecord

    rows = []
    for i in range(n):
        rej = i % every_rejected == 0
        rows.append(RowRecord(input=f"Question {i}: which word names the {WORDS[i % 10]}?", output=WORDS[i % 10],
                              status="rejected" if rej else "kept",
                              reason=("too_long: input + output exceed 4000 characters" if i % 10 == 0 else
                                      "exact_duplicate: same normalized input") if rej else None,
                              dataset_id=dataset_id if i % 3 else "test/qa", config="default",
                              source_row_id=f"r{i}", source_json={"question": f"q{i}", "answer": WORDS[i % 10]},
                              plan_version=1, path="template", run_id="transform-1"))
    store.add_rows(pid, rows)
