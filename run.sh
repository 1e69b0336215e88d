#!/usr/bin/env bash
# Set up a local virtual environment (.venv) if missing, install genjax into it with the tested
# versions of every dependency (requirements.lock), then:
#   ./run.sh demo [flags]   train the VAE demo on the embedded digits (extra flags go to `genjax train`)
#   ./run.sh test [args]    run the test suite (extra args go to pytest)
#   ./run.sh lock           refresh requirements.lock: a fresh venv with the newest versions the
#                           pins in pyproject.toml allow, the whole suite on it, and the lock
#                           rewritten only if the suite passes (an upgrade is a tested change)
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "run.sh: genjax needs Python >= 3.11; set PYTHON=/path/to/python3.11 (found: $("$PY" --version 2>&1))." >&2
  exit 2
fi
cmd=${1:-}
[ $# -gt 0 ] && shift

if [ "$cmd" = lock ]; then
  venv=.venv-lock
  rm -rf "$venv"
  "$PY" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q -e '.[test]'
  echo "run.sh lock: testing $("$venv/bin/python" -c 'import jax; print("jax", jax.__version__)') and the rest (see $venv)..."
  "$venv/bin/python" -m pytest -n 2 -q "$@"
  {
    echo "# The versions the test suite passed with, on Python $("$venv/bin/python" -c 'import platform; print(platform.python_version())'),"
    echo "# $(date -u +%Y-%m-%d). ./run.sh installs from this file; ./run.sh lock refreshes it."
    "$venv/bin/python" -m pip freeze --exclude-editable
  } > requirements.lock
  rm -rf "$venv"
  echo "run.sh lock: requirements.lock rewritten; the next ./run.sh demo|test reinstalls .venv from it."
  exit 0
fi

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.genjax-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ requirements.lock -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -c requirements.lock -e '.[test]'
  touch "$stamp"
fi
case "$cmd" in
  demo) exec .venv/bin/genjax train --config experiments/vae_digits/config.py "$@" ;;
  test) exec .venv/bin/python -m pytest -n 2 "$@" ;;
  *) echo "usage: ./run.sh demo|test|lock [args]" >&2; exit 2 ;;
esac
