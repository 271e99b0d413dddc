"""The bad-input catalogue (tests/badinput/cases.py): each input gives its exact message, never a traceback
(the UI's `describe` classifies it as an expected error, so the page shows the message and hides the stack),
and leaves everything else in the workspace as it was: every table of the store and every file under
DATATUNE_HOME are compared before and after."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .cases import CASES, EXPECTED, HANDLED, World

VOLATILE_FILES = {"workspace.db", "workspace.db-wal", "workspace.db-shm", "app.log"}


def snapshot(store, home: Path) -> dict:
    tables = [r[0] for r in store.query("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
    snap = {t: sorted(json.dumps([*map(str, r)]) for r in store.query(f"SELECT * FROM {t}")) for t in tables}
    snap["files"] = sorted((str(p.relative_to(home)), p.stat().st_size) for p in home.rglob("*")
                           if p.is_file() and p.name not in VOLATILE_FILES)
    return snap


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from datatune_core.store import RowRecord, Store

    base = tmp_path_factory.mktemp("badinput")
    home = base / "home"
    old = os.environ.get("DATATUNE_HOME")
    os.environ["DATATUNE_HOME"] = str(home)
    st = Store.open(home)
    pid = st.create_project("bad", "Answer the question.", [{"input": "2+2?", "output": "4"}])
    st.add_rows(pid, [RowRecord(input=f"q{i}", output=f"a{i}", status="kept", source_row_id=str(i)) for i in range(5)])
    (base / "t").mkdir()
    yield World(st, home, base / "t", pid)
    st.close()
    if old is None:
        os.environ.pop("DATATUNE_HOME", None)
    else:
        os.environ["DATATUNE_HOME"] = old


def run_case(w: World, name: str) -> tuple[str, bool]:
    """(text the user sees, shown without a traceback)."""
    from datatune_ui.errors import describe

    try:
        text, expected = CASES[name](w), True
        assert name in HANDLED, f"{name} was accepted silently; it should be refused with a message"
    except AssertionError:
        raise
    except Exception as e:  # noqa: BLE001 - what the page's guard() catches
        text, expected = describe(e)
        assert name not in HANDLED, f"{name} should be handled, but raised: {text}"
    return text.replace(str(w.tmp), "{tmp}").replace(str(w.home), "{home}"), expected


def test_catalogue_is_complete():
    assert len(CASES) >= 25 and set(CASES) == set(EXPECTED)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(world, name):
    before = snapshot(world.store, world.home)
    text, expected = run_case(world, name)
    assert expected, f"{name}: shown as a bug with a traceback: {text}"
    assert "Traceback" not in text
    assert text == EXPECTED[name]
    assert snapshot(world.store, world.home) == before, f"{name} changed the workspace"
