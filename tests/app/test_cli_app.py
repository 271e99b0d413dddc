"""`datatune app` serves the Studio on 127.0.0.1 (argv list, no shell); the config raises no warnings."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from datatune_core.cli.commands.app import app_argv

from .conftest import ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_argv_binds_localhost_without_shell():
    argv = app_argv(port=8600)
    assert argv[:4] == [sys.executable, "-m", "streamlit", "run"]
    assert argv[argv.index("--server.address") + 1] == "127.0.0.1"
    assert argv[argv.index("--server.port") + 1] == "8600"
    assert all(isinstance(a, str) for a in argv)


def test_datatune_app_serves_and_config_is_clean(tmp_path):
    port = _free_port()
    log = tmp_path / "app.log"
    env = dict(os.environ, DATATUNE_HOME=str(tmp_path / "home"), PYTHONPATH=str(ROOT))
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "datatune_core.cli", "app", "--port", str(port)], cwd=tmp_path,
                                env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        ok = False
        while time.monotonic() < deadline and not ok:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    ok = r.status == 200
            except OSError:
                time.sleep(0.3)
        assert ok, log.read_text()[-2000:]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
            assert r.status == 200
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    text = log.read_text()
    assert "http://127.0.0.1:" in text
    for bad in ("is not a valid config option", "Warning: the config option", "deprecated", "Traceback"):
        assert bad not in text, text
