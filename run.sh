#!/usr/bin/env bash
# Set up a local virtual environment (.venv) if missing, install genjax into it, then:
#   ./run.sh demo [flags]   train the VAE demo on the embedded digits (extra flags go to `genjax train`)
#   ./run.sh test [args]    run the test suite (extra args go to pytest)
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "run.sh: genjax needs Python >= 3.11; set PYTHON=/path/to/python3.11 (found: $("$PY" --version 2>&1))." >&2
  exit 2
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.genjax-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[test]'
  touch "$stamp"
fi
cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  demo) exec .venv/bin/genjax train --config experiments/vae_digits/config.py "$@" ;;
  test) exec .venv/bin/python -m pytest -n 2 "$@" ;;
  *) echo "usage: ./run.sh demo|test [args]" >&2; exit 2 ;;
esac
