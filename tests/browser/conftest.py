"""The running Studio for browser tests: app server + scripted Messages-API server + headless chromium."""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

from datatune_core.config import shared_dir

from .harness import ROOT, AppServer, Browser, browser_available, e2e_responder

CACHE = ROOT / "test-output" / "e2e-cache"  # the search index, reused across runs (models: DATATUNE_MODELS_DIR)


def _skip_without_browser_or_shared() -> None:
    why = browser_available()
    if why:
        pytest.skip(why)
    if shared_dir() is None:
        pytest.skip("needs ../shared (BIG-bench demo tasks and catalog rows)")


@contextmanager
def _running(home: Path, env: dict[str, str], profile: Path):
    """App server + browser + store on `home`; on exit every live job is stopped and everything closed."""
    from datatune_core import jobs as J
    from datatune_core.store import Store

    app = AppServer(home, env).start()
    browser = Browser(profile)
    store = Store.open(home)
    try:
        yield app, browser, store
    finally:
        browser.quit()
        for j in store.list_jobs(limit=100):
            if j.status in ("queued", "running"):
                J.cancel_job(store, j.id)
                J.kill_job(store, j.id)
        app.stop()
        store.close()


@pytest.fixture
def offline_studio(tmp_path: Path):
    """The Studio as a new user gets it: no API key, embedded defaults, a fresh workspace."""
    _skip_without_browser_or_shared()
    home = tmp_path / "home"
    home.mkdir()
    with _running(home, {}, tmp_path / "chrome-profile") as got:
        yield got


@pytest.fixture
def studio(tmp_path: Path):
    _skip_without_browser_or_shared()
    from tests.fakes.messages_server import MessagesServer

    home = tmp_path / "home"
    home.mkdir()
    if (CACHE / "index").is_dir():
        shutil.copytree(CACHE / "index", home / "index")
    srv = MessagesServer(responder=e2e_responder).start()
    env = {"ANTHROPIC_API_KEY": srv.api_key, "ANTHROPIC_BASE_URL": srv.url, "DATATUNE_LLM_TIMEOUT": "20"}
    try:
        with _running(home, env, tmp_path / "chrome-profile") as (app, browser, store):
            yield app, browser, store, srv
    finally:
        srv.stop()
        if not (CACHE / "index").exists() and (home / "index").is_dir():
            CACHE.mkdir(parents=True, exist_ok=True)
            shutil.copytree(home / "index", CACHE / "index")
