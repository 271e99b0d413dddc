"""Fixtures of the fault matrix: a private workspace, the fault-injecting Messages-API server on 127.0.0.1, and the
environment that points the app (and every job worker it spawns) at that server."""

from __future__ import annotations

from pathlib import Path

import pytest

from .harness import Env, FaultServer, llm_env, responder


@pytest.fixture(scope="session")
def shared_models(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("rel-models")


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_models: Path):
    with FaultServer(responder=responder) as srv:
        for k, v in llm_env(srv.url).items():
            monkeypatch.setenv(k, v)
        monkeypatch.setenv("DATATUNE_HOME", str(tmp_path / "home"))
        monkeypatch.setenv("DATATUNE_BIGBENCH_DIR", str(shared_models / "minibench"))
        e = Env(home=tmp_path / "home", srv=srv, data=shared_models / "data")
        try:
            yield e
        finally:
            import os

            from datatune_core import jobs

            for j in e.store.list_jobs():  # never leave a worker behind (in-process jobs carry our own pid)
                if j.pid and j.pid != os.getpid() and j.status in ("running", "queued"):
                    jobs.kill_job(e.store, j.id)
            e.store.close()
