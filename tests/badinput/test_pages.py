"""The task-level bad inputs as the Task page shows them (AppTest through the real navigation): the exact
catalogue message in a warning, no exception, no traceback on the page."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.app.conftest import ROOT, open_app, texts

from .cases import EXPECTED

TASK = "app_pages/1_Task.py"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name,instruction,examples", [
    ("empty_instruction", "", []),
    ("one_megabyte_instruction", ("Classify. " * 100_000).strip(), []),
    ("example_without_output", "Translate to German.", [{"input": "Good morning", "output": ""}]),
])
def test_task_page_shows_the_message_without_a_traceback(tmp_path: Path, monkeypatch, name, instruction, examples):
    from datatune_core.store import Store

    monkeypatch.setenv("DATATUNE_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(ROOT)
    st = Store.open(tmp_path / "home")
    pid = st.create_project("p", instruction, examples)
    at = open_app(TASK, project=pid)
    assert not at.exception
    shown = [w.value for w in at.warning]
    assert EXPECTED[name] in shown, shown
    assert "Traceback" not in texts(at)
    st.close()
