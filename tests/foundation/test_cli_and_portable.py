from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from datatune_core.cli import app
from datatune_core.exporting.portable import export_project, import_project
from datatune_core.store import RowRecord, Store

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_engine_never_imports_streamlit():
    offenders = []
    for py in (ROOT / "datatune_core").rglob("*.py"):
        tree = ast.parse(py.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "streamlit" or n.startswith("streamlit.") for n in names):
                offenders.append(str(py.relative_to(ROOT)))
    assert offenders == []
    # and importing the whole CLI does not pull it in
    code = "import sys, datatune_core.cli; print('streamlit' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"


def test_help_lists_the_stages():
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    for cmd in ("projects", "jobs"):
        assert cmd in res.output


def test_projects_cli_round_trip(home: Path, tmp_path: Path):
    ex = tmp_path / "ex.jsonl"
    ex.write_text('{"input": "2+2", "output": "4"}\n{"input": "3+3", "output": "6"}\n')
    res = runner.invoke(app, ["projects", "create", "math", "--instruction", "Add numbers", "--examples", str(ex)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["projects", "list", "--json"])
    rows = json.loads(res.output)
    assert rows[0]["name"] == "math" and rows[0]["examples"] == 2
    res = runner.invoke(app, ["projects", "show", "nope"])
    assert res.exit_code != 0 and "No project 'nope'" in res.output


def test_bad_examples_file_message(home: Path, tmp_path: Path):
    ex = tmp_path / "ex.jsonl"
    ex.write_text('{"input": "2+2", "output": "4"}\n{broken\n')
    res = runner.invoke(app, ["projects", "create", "m", "--examples", str(ex)])
    assert res.exit_code != 0
    assert "line 2" in str(res.exception) or "line 2" in res.output


def test_export_import_project(store: Store, tmp_path: Path):
    pid = store.create_project("share me", "Do X", [{"input": "a", "output": "b"}])
    store.add_plan_version(pid, "ds", "c", {"steps": ["one"]})
    store.upsert_candidate(pid, "ds", record={"id": "ds"}, decision="accepted", fused_score=0.5)
    store.add_rows(pid, [RowRecord(input="i", output="o", status="kept", dataset_id="ds", source_row_id="1")])
    rid = store.list_rows(pid)[0].id
    store.edit_row(rid, output="o2")
    out = export_project(store, pid, tmp_path / "exp")
    assert (out / "project.json").is_file() and (out / "rows.parquet").is_file()
    with pytest.raises(Exception, match="not empty"):
        export_project(store, pid, out)
    new = import_project(store, out)
    p = store.get_project(new)
    assert p.name == "share me (2)" and p.examples == [{"input": "a", "output": "b"}]
    rows = store.list_rows(new)
    assert len(rows) == 1 and rows[0].output == "o2" and rows[0].status == "edited"
    assert store.row_edit_history(rows[0].id)[0]["new_value"] == "o2"
    assert store.plan_versions(new, "ds", "c")[0]["payload"] == {"steps": ["one"]}
    assert store.list_candidates(new)[0]["decision"] == "accepted"
