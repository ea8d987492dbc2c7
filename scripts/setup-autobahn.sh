#!/usr/bin/env bash
# Installs the Autobahn|Testsuite (wstest) into .autobahn/venv (Python 2.7).
#
#   bash scripts/setup-autobahn.sh     # prints the path of wstest on stdout (last line)
#
# Idempotent: does nothing when .autobahn/venv/bin/wstest already works and the
# venv was built from the current scripts/autobahn-requirements.txt.
# Progress goes to stderr; stdout carries only the wstest path.
#
# Needs: Python 2.7 (pyenv's 2.7.18, or $AUTOBAHN_PYTHON27, or python2.7 on
# PATH), a python3 (to run virtualenv<20.22, the last one that can create 2.7
# environments), gcc and network access to PyPI. Uses no stdin.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
AB_DIR="$ROOT/.autobahn"
VENV="$AB_DIR/venv"
TOOLS="$AB_DIR/tools"            # private python3 venv holding virtualenv
REQ="$ROOT/scripts/autobahn-requirements.txt"
WSTEST="$VENV/bin/wstest"
STAMP="$VENV/.autobahn-requirements.sha256"
VIRTUALENV_PIN="virtualenv==20.21.1"   # <20.22: last series that creates Python 2.7 venvs

log() { echo "[setup-autobahn] $*" >&2; }
die() { echo "[setup-autobahn] ERROR: $*" >&2; exit 1; }

# Keep pip quiet and non-interactive.
export PIP_DISABLE_PIP_VERSION_CHECK=1
export PIP_NO_PYTHON_VERSION_WARNING=1
export PIP_NO_INPUT=1
export PIP_PROGRESS_BAR=off

[ -f "$REQ" ] || die "missing $REQ"
req_hash="$(sha256sum "$REQ" | cut -d' ' -f1)"

if [ -x "$WSTEST" ] && "$WSTEST" --help >/dev/null 2>&1 </dev/null \
   && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$req_hash" ]; then
  log "wstest already installed"
  echo "$WSTEST"
  exit 0
fi

start_s=$(date +%s)

# ---------------------------------------------------------------- Python 2.7
is_py27() {
  [ -n "$1" ] && "$1" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (2, 7) else 1)' \
    >/dev/null 2>&1 </dev/null
}

find_py27() {
  local cand
  if [ -n "${AUTOBAHN_PYTHON27:-}" ]; then
    is_py27 "$AUTOBAHN_PYTHON27" && { echo "$AUTOBAHN_PYTHON27"; return 0; }
    die "AUTOBAHN_PYTHON27=$AUTOBAHN_PYTHON27 is not a working Python 2.7"
  fi
  if command -v pyenv >/dev/null 2>&1; then
    local proot
    proot="$(pyenv root 2>/dev/null || true)"
    if [ -n "$proot" ]; then
      cand="$proot/versions/2.7.18/bin/python"
      is_py27 "$cand" && { echo "$cand"; return 0; }
    fi
  fi
  cand="$HOME/.pyenv/versions/2.7.18/bin/python"
  is_py27 "$cand" && { echo "$cand"; return 0; }
  if command -v python2.7 >/dev/null 2>&1; then
    # Resolve pyenv shims etc. to the real interpreter.
    cand="$(python2.7 -c 'import sys; print(sys.executable)' 2>/dev/null </dev/null || true)"
    is_py27 "$cand" && { echo "$cand"; return 0; }
  fi
  return 1
}

PY27="$(find_py27)" || die "no Python 2.7 found (tried pyenv root, ~/.pyenv/versions/2.7.18, python2.7); set AUTOBAHN_PYTHON27"
log "python 2.7: $PY27"

# ------------------------------------------------------- virtualenv (python3)
VIRTUALENV=()
ensure_virtualenv() {
  if [ -x "$TOOLS/bin/virtualenv" ] && "$TOOLS/bin/virtualenv" --version >/dev/null 2>&1 </dev/null; then
    VIRTUALENV=("$TOOLS/bin/virtualenv"); return 0
  fi
  if [ -d "$AB_DIR/tools-pkgs/virtualenv" ] \
     && PYTHONPATH="$AB_DIR/tools-pkgs" python3 -m virtualenv --version >/dev/null 2>&1 </dev/null; then
    VIRTUALENV=(env "PYTHONPATH=$AB_DIR/tools-pkgs" python3 -m virtualenv); return 0
  fi
  command -v python3 >/dev/null 2>&1 || die "python3 not found (needed to run virtualenv)"
  log "installing $VIRTUALENV_PIN for $(python3 --version 2>&1) into $TOOLS"
  rm -rf "$TOOLS"
  if python3 -m venv "$TOOLS" >/dev/null 2>&1 </dev/null \
     && "$TOOLS/bin/python" -m pip install --quiet "$VIRTUALENV_PIN" >&2 </dev/null; then
    VIRTUALENV=("$TOOLS/bin/virtualenv"); return 0
  fi
  # python3 without a working venv module (e.g. Debian without python3-venv):
  # install into a private --target directory instead.
  log "python3 -m venv unusable; falling back to pip --target"
  rm -rf "$TOOLS" "$AB_DIR/tools-pkgs"
  python3 -m pip install --quiet --target "$AB_DIR/tools-pkgs" "$VIRTUALENV_PIN" >&2 </dev/null \
    || die "could not install $VIRTUALENV_PIN for python3"
  VIRTUALENV=(env "PYTHONPATH=$AB_DIR/tools-pkgs" python3 -m virtualenv)
}

mkdir -p "$AB_DIR"
ensure_virtualenv

# ------------------------------------------------------------- the 2.7 venv
log "creating $VENV"
rm -rf "$VENV"
"${VIRTUALENV[@]}" --quiet --no-periodic-update \
  --app-data "$AB_DIR/virtualenv-app-data" \
  -p "$PY27" "$VENV" >&2 </dev/null || die "virtualenv failed"

log "installing scripts/autobahn-requirements.txt (a few sdists are built; needs gcc)"
# --no-deps + a complete pinned list + pip check: exactly the listed versions.
# --no-build-isolation: build the sdists with the venv's own setuptools/wheel
# instead of fetching unpinned build requirements (wsaccel would pull Cython).
"$VENV/bin/python" -m pip install --no-deps --no-build-isolation -r "$REQ" >&2 </dev/null \
  || die "pip install failed"
"$VENV/bin/python" -m pip check >&2 </dev/null || die "pip check failed: requirements list is inconsistent"

"$WSTEST" --help >/dev/null 2>&1 </dev/null || die "$WSTEST --help does not work after install"
echo "$req_hash" > "$STAMP"

log "done in $(( $(date +%s) - start_s ))s"
echo "$WSTEST"
