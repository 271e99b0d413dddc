"""AppTest helpers: a private DATATUNE_HOME per test and the app started through its real navigation."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")


@pytest.fixture
def app_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    monkeypatch.setenv("DATATUNE_HOME", str(h))
    monkeypatch.chdir(ROOT)
    return h


@pytest.fixture
def store(app_home: Path):
    from datatune_core.store import Store

    s = Store.open(app_home)
    yield s
    s.close()


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
    for el in at.sidebar.markdown:
        parts.append(str(el.value))
    return "\n".join(parts)


def button(at: AppTest, label: str, nth: int = 0):
    found = [b for b in at.button if b.label == label]
    assert found, f"no button {label!r}; have {[b.label for b in at.button]}"
    return found[nth]
