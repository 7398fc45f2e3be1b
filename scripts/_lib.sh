# shellcheck shell=bash disable=SC2119
# Shared helpers for scripts/*.sh and .ci/run. Source it; it defines functions and
# variables only (no side effects besides them).
#
# Tool versions live here, in one place:
#   Meltano  -> .tools/meltano  (own venv: its dependencies clash with the tap's)
#   Airflow  -> .tools/airflow  (own venv, pinned by orchestrate/airflow/constraints-py3.11.txt)

MELTANO_VERSION="${MELTANO_VERSION:-4.4.1}"
AIRFLOW_VERSION="${AIRFLOW_VERSION:-3.3.2}"

PROJECT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_DIR="${TOOLS_DIR:-$PROJECT_ROOT/.tools}"
MELTANO_VENV="$TOOLS_DIR/meltano"
AIRFLOW_VENV="${AIRFLOW_VENV:-$TOOLS_DIR/airflow}"
MELTANO_BIN="${MELTANO_BIN:-$MELTANO_VENV/bin/meltano}"
AIRFLOW_BIN="${AIRFLOW_BIN:-$AIRFLOW_VENV/bin/airflow}"

# Only PyPI is reachable: never let uv try to download a Python build.
export UV_PYTHON_DOWNLOADS="${UV_PYTHON_DOWNLOADS:-never}"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# The interpreter for the tool venvs and the project venv (3.11+), as its real path: a pyenv
# shim is a different path from the interpreter uv records, and uv recreates a venv whose
# interpreter path differs from the one it is given.
pick_python() {
    local py
    for py in "${PYTHON:-}" python3.11 python3.12 python3.13 python3; do
        [ -n "$py" ] || continue
        if command -v "$py" >/dev/null 2>&1 &&
            "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            "$py" -c 'import sys; print(sys.executable)'
            return 0
        fi
    done
    die "Python 3.11 or newer is required (set PYTHON=/path/to/python3)"
}

# Make `uv` available: the one on PATH, else pip --user, else a small venv in .tools.
ensure_uv() {
    if command -v uv >/dev/null 2>&1; then return 0; fi
    export PATH="$HOME/.local/bin:$TOOLS_DIR/uv/bin:$PATH"
    if command -v uv >/dev/null 2>&1; then return 0; fi
    local py
    py="$(pick_python)"
    log "installing uv (pip)"
    if ! "$py" -m pip install --quiet --user uv 2>/dev/null; then
        # PEP 668 ("externally managed") systems, or no pip: a private venv.
        if ! { "$py" -m venv "$TOOLS_DIR/uv" && "$TOOLS_DIR/uv/bin/python" -m pip install --quiet uv; }; then
            die "could not install uv; install it with your package manager or pipx"
        fi
    fi
    hash -r
    command -v uv >/dev/null 2>&1 || die "uv installed but not on PATH"
}

# Project venv (.venv) from uv.lock. Args: extra flags for uv sync, e.g. --all-groups.
# A working .venv is kept whatever interpreter is first on PATH today.
sync_project() {
    ensure_uv
    cd "$PROJECT_ROOT" || return 1
    local python=()
    if ! .venv/bin/python -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        python=(--python "$(pick_python)")
    fi
    log "uv sync --frozen $*"
    uv sync --quiet --frozen "${python[@]}" "$@"
}

# Meltano in its own venv; skipped when the pinned version is already there.
install_meltano() {
    if [ -x "$MELTANO_VENV/bin/meltano" ] &&
        "$MELTANO_VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('meltano') != '$MELTANO_VERSION')" 2>/dev/null; then
        return 0
    fi
    ensure_uv
    log "installing meltano==$MELTANO_VERSION into $MELTANO_VENV"
    uv venv --quiet --allow-existing --python "$(pick_python)" "$MELTANO_VENV"
    uv pip install --quiet --python "$MELTANO_VENV/bin/python" "meltano==$MELTANO_VERSION"
}

# `meltano install` (idempotent: plugins already installed with the same pip_url are kept).
# Skipped altogether when meltano.yml and pyproject.toml are unchanged since the last
# successful install (Meltano's own start-up alone costs seconds); MELTANO_FORCE_INSTALL=1
# always runs it.
meltano_install() {
    install_meltano
    local stamp="$PROJECT_ROOT/.meltano/.install-stamp" key
    key="$(cat "$PROJECT_ROOT/meltano.yml" "$PROJECT_ROOT/pyproject.toml" | cksum) $MELTANO_VERSION $*"
    if [ "${MELTANO_FORCE_INSTALL:-0}" != 1 ] && [ "$(cat "$stamp" 2>/dev/null)" = "$key" ]; then
        log "meltano plugins up to date (MELTANO_FORCE_INSTALL=1 to reinstall)"
        return 0
    fi
    log "meltano install $*"
    (cd "$PROJECT_ROOT" && "$MELTANO_BIN" install "$@")
    mkdir -p "$PROJECT_ROOT/.meltano"
    echo "$key" >"$stamp"
}

# Airflow in its own venv, pinned by a constraints file frozen from a working install
# (Airflow's own constraint files live on GitHub, which may be unreachable).
install_airflow() {
    if [ -x "$AIRFLOW_VENV/bin/airflow" ] &&
        "$AIRFLOW_VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('apache-airflow') != '$AIRFLOW_VERSION')" 2>/dev/null; then
        return 0
    fi
    ensure_uv
    local py constraints=()
    py="$(pick_python)"
    local pyver
    pyver="$("$py" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
    local cfile="$PROJECT_ROOT/orchestrate/airflow/constraints-py$pyver.txt"
    [ -f "$cfile" ] && constraints=(--constraint "$cfile")
    log "installing apache-airflow==$AIRFLOW_VERSION into $AIRFLOW_VENV ${constraints[*]:-}"
    uv venv --quiet --allow-existing --python "$py" "$AIRFLOW_VENV"
    uv pip install --quiet --python "$AIRFLOW_VENV/bin/python" "apache-airflow==$AIRFLOW_VERSION" "${constraints[@]}"
}

# A free TCP port on 127.0.0.1.
free_port() {
    "$(pick_python)" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# The sandbox's default credentials (the same as meltano.yml's sandbox environment).
SANDBOX_JWT_ID="${SANDBOX_JWT_ID:-sandbox-jwt-id}"
SANDBOX_JWT_SECRET="${SANDBOX_JWT_SECRET:-sandbox-jwt-secret-0123456789abcdef}"

# start_sandbox LOGDIR [extra usersnap-sandbox args...]
# Starts .venv/bin/usersnap-sandbox on a free port in the background; sets SANDBOX_PID,
# SANDBOX_URL (…/v0.1) and SANDBOX_ROOT (control routes live at $SANDBOX_ROOT/_sandbox/).
start_sandbox() {
    local logdir="$1"
    shift
    local exe="$PROJECT_ROOT/.venv/bin/usersnap-sandbox"
    [ -x "$exe" ] || die "$exe not found (run: uv sync)"
    mkdir -p "$logdir"
    : >"$logdir/sandbox.out"
    "$exe" --host 127.0.0.1 --port 0 --jwt-id "$SANDBOX_JWT_ID" --jwt-secret "$SANDBOX_JWT_SECRET" "$@" \
        >"$logdir/sandbox.out" 2>"$logdir/sandbox.err" &
    SANDBOX_PID=$!
    local _
    for _ in $(seq 1 300); do
        if [ -s "$logdir/sandbox.out" ] && head -n 1 "$logdir/sandbox.out" | grep -q '"url"'; then
            break
        fi
        kill -0 "$SANDBOX_PID" 2>/dev/null || { cat "$logdir/sandbox.err" >&2; die "sandbox exited"; }
        sleep 0.1
    done
    SANDBOX_URL="$(head -n 1 "$logdir/sandbox.out" | "$PROJECT_ROOT/.venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["url"])')" ||
        die "sandbox printed no URL (see $logdir/sandbox.err)"
    SANDBOX_ROOT="${SANDBOX_URL%/v0.1}"
    export SANDBOX_PID SANDBOX_URL SANDBOX_ROOT
}

stop_sandbox() {
    if [ -n "${SANDBOX_PID:-}" ] && kill -0 "$SANDBOX_PID" 2>/dev/null; then
        kill -TERM "$SANDBOX_PID" 2>/dev/null || true
        wait "$SANDBOX_PID" 2>/dev/null || true
    fi
    SANDBOX_PID=""
}

# sandbox_call METHOD PATH [JSON_BODY]: a control-route request; prints the JSON answer.
sandbox_call() {
    "$PROJECT_ROOT/.venv/bin/python" - "$SANDBOX_ROOT" "$1" "$2" "${3:-}" <<'PY'
import sys, urllib.request
root, method, path, body = sys.argv[1:5]
req = urllib.request.Request(root + path, method=method, data=body.encode() if body else None,
                             headers={"Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=30) as resp:
    print(resp.read().decode())
PY
}
