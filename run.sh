#!/usr/bin/env bash
# One entry point: creates .venv on first use (reused after), then runs what you asked.
#   ./run.sh train [flags]          python -m pytorch_impl.train [flags]
#   ./run.sh train-jax [flags]      python -m jax_impl.train [flags]
#   ./run.sh train-keras [flags]    python -m keras_impl.train [flags]
#   ./run.sh compare [flags]        python -m benchmarks.compare [flags]: all three, one report
#   ./run.sh course [flags]         JupyterLab on the course's notebooks (course/README.md)
#   ./run.sh test [pytest args]     the whole test suite
#   ./run.sh setup                  only create / update the environment
#   ./run.sh python ARGS...         any command inside the environment
set -euo pipefail
cd "$(dirname "$0")"
VENV=${DCGAN_VENV:-.venv}      # where the environment lives (tests point it elsewhere)
STAMP="$VENV/.requirements.sha"

setup() {
  local want have=""
  want=$(sha256sum requirements.txt | cut -d' ' -f1)
  [ -f "$STAMP" ] && have=$(cat "$STAMP")
  if [ -x "$VENV/bin/python" ] && [ "$want" = "$have" ]; then
    return
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    echo "creating $VENV (first run: about 3 minutes and 8.5 GB of disk) ..." >&2
    python3 -m venv "$VENV"
  else
    echo "requirements.txt changed: updating $VENV ..." >&2
  fi
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.txt
  echo "$want" > "$STAMP"
}

cmd=${1:-help}
[ $# -gt 0 ] && shift
case "$cmd" in
  setup) setup ;;
  train) setup; exec "$VENV/bin/python" -m pytorch_impl.train "$@" ;;
  train-jax) setup; exec "$VENV/bin/python" -m jax_impl.train "$@" ;;
  train-keras) setup; exec "$VENV/bin/python" -m keras_impl.train "$@" ;;
  compare) setup; exec "$VENV/bin/python" -m benchmarks.compare "$@" ;;
  course) setup
    extra=()
    if [ "$(id -u)" = 0 ]; then     # a container's usual user; JupyterLab refuses root without it
      echo "running as root: passing --allow-root to JupyterLab (it refuses root otherwise)" >&2
      extra+=(--allow-root)
    fi
    exec "$VENV/bin/python" -m jupyterlab course ${extra[@]+"${extra[@]}"} "$@" ;;
  test)  setup; exec "$VENV/bin/python" -m pytest "$@" ;;
  python) setup; exec "$VENV/bin/python" "$@" ;;
  *) sed -n '2,/^set /{/^#/s/^# \{0,1\}//p}' "$0"; [ "$cmd" = help ] || exit 2 ;;
esac
