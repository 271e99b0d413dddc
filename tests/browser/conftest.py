"""The running Studio for browser tests: app server + scripted Messages-API server + headless chromium."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from datatune_core.config import shared_dir

from .harness import ROOT, AppServer, Browser, browser_available, e2e_responder

CACHE = ROOT / "test-output" / "e2e-cache"  # search index and the converted demo model, reused across runs


@pytest.fixture
def studio(tmp_path: Path):
    why = browser_available()
    if why:
        pytest.skip(why)
    if shared_dir() is None:
        pytest.skip("needs ../shared (BIG-bench demo tasks and catalog rows)")
    from datatune_core import jobs as J
    from datatune_core.store import Store
    from tests.fakes.messages_server import MessagesServer

    home = tmp_path / "home"
    home.mkdir()
    if (CACHE / "index").is_dir():
        shutil.copytree(CACHE / "index", home / "index")
    if (CACHE / "models").is_dir():  # read-only use: the converted SmolLM2 copy
        (home / "models").symlink_to(CACHE / "models", target_is_directory=True)
    srv = MessagesServer(responder=e2e_responder).start()
    app = AppServer(home, {"ANTHROPIC_API_KEY": srv.api_key, "ANTHROPIC_BASE_URL": srv.url,
                           "DATATUNE_LLM_TIMEOUT": "20"}).start()
    browser = Browser(tmp_path / "chrome-profile")
    store = Store.open(home)
    try:
        yield app, browser, store, srv
    finally:
        browser.quit()
        for j in store.list_jobs(limit=100):
            if j.status in ("queued", "running"):
                J.cancel_job(store, j.id)
                J.kill_job(store, j.id)
        app.stop()
        srv.stop()
        for sub in ("index", "models"):
            if not (CACHE / sub).exists() and (home / sub).is_dir() and not (home / sub).is_symlink():
                CACHE.mkdir(parents=True, exist_ok=True)
                shutil.copytree(home / sub, CACHE / sub)
        store.close()


