#!/usr/bin/env bash
# Installs the interop peers used against capstan through a real LiveKit server:
#   __test__/livekit/peers/agents-js  npm install (own package.json: @livekit/agents 1.9.0 on @livekit/rtc-node 0.13.35)
#   __test__/livekit/peers/agents-py  venv at .cache/livekit/venv (gitignored) + pip install -r requirements.txt
# and runs each peer's check script (prints OK lines). Idempotent; `--js` or `--py` for one only.
#   LIVEKIT_PEERS_PYTHON_BIN=python3.11   the Python that makes the venv (>= 3.10)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PEERS="$ROOT/__test__/livekit/peers"
VENV="$ROOT/.cache/livekit/venv"
do_js=1; do_py=1
case "${1:-}" in --js) do_py=0 ;; --py) do_js=0 ;; "") ;; *) echo "usage: $0 [--js|--py]" >&2; exit 2 ;; esac

if (( do_js )); then
  echo "livekit-peers.sh: agents-js (npm install in $PEERS/agents-js)" >&2
  (cd "$PEERS/agents-js" && npm install --no-audit --no-fund --loglevel=error >&2 && node check.mjs)
fi
if (( do_py )); then
  PY="${LIVEKIT_PEERS_PYTHON_BIN:-python3}"
  if [[ ! -x "$VENV/bin/python" ]]; then
    echo "livekit-peers.sh: agents-py (venv $VENV with $("$PY" --version))" >&2
    mkdir -p "$(dirname "$VENV")"
    "$PY" -m venv "$VENV"
  fi
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$PEERS/agents-py/requirements.txt" >&2
  "$VENV/bin/python" "$PEERS/agents-py/check.py"
fi
