#!/usr/bin/env bash
# shellcheck disable=SC2119
# The main job in one command: Usersnap (local sandbox) -> Meltano -> DuckDB.
#
#   bash scripts/demo.sh            # first run: full load; later runs: incremental
#   bash scripts/demo.sh --reset    # forget the DuckDB file and the Meltano state first
#
# Needs only Python 3.11+ (and the network to PyPI on the first run). It installs uv if
# missing, the project venv without the test and lint tools (uv sync --no-dev), Meltano into
# .tools/meltano and the plugins (meltano install); each is kept when already there. It
# starts the sandbox API on a free port, runs the Meltano job `usersnap-to-warehouse`
# (tap-usersnap -> target-duckdb), prints rows per table and a command to query them.
# Output goes to output/ (DEMO_OUTPUT_DIR), the warehouse to output/warehouse.duckdb
# (TARGET_DUCKDB_FILEPATH), Meltano's state to .meltano/meltano.db (MELTANO_DATABASE_URI).
#
# The sandbox restarts with the same seeded data every time, while the DuckDB file and
# Meltano's state (.meltano/meltano.db) persist. So before every run after the first, the
# demo changes 5 feedbacks and adds 3 in the sandbox: the incremental run picks up exactly
# those (plus the records at the bookmark) and merges them on feedback_id.
#
# The same pipeline against the real API (credentials from the shell or .env):
#   TAP_USERSNAP_JWT_ID=... TAP_USERSNAP_JWT_SECRET=... \
#     .tools/meltano/bin/meltano --environment=prod run usersnap-to-warehouse
set -euo pipefail
# shellcheck source=scripts/_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

RESET=0
for arg in "$@"; do
    case "$arg" in
        --reset) RESET=1 ;;
        -h | --help) sed -n '2,23p' "$0"; exit 0 ;;
        *) die "unknown argument: $arg" ;;
    esac
done

cd "$PROJECT_ROOT"
T0=$(date +%s)
OUT_DIR="${DEMO_OUTPUT_DIR:-$PROJECT_ROOT/output}"
DB="${TARGET_DUCKDB_FILEPATH:-$OUT_DIR/warehouse.duckdb}"
SUMMARY_JSON="$OUT_DIR/.last_summary.json"
LOG_DIR="$OUT_DIR/logs"
mkdir -p "$OUT_DIR" "$LOG_DIR"

# 1. Tools and plugins (each step is skipped when already done).
ensure_uv
# --inexact: what `bash scripts/test.sh` added (pytest, ruff, ...) stays.
sync_project --no-dev --inexact
meltano_install >"$LOG_DIR/meltano-install.log" 2>&1 ||
    { tail -n 40 "$LOG_DIR/meltano-install.log" >&2; die "meltano install failed"; }
DUCK_PY="$PROJECT_ROOT/.meltano/loaders/target-duckdb/venv/bin/python"
[ -x "$DUCK_PY" ] || die "target-duckdb plugin venv missing ($DUCK_PY)"

if [ "$RESET" = 1 ]; then
    log "reset: removing $DB and the Meltano state"
    rm -f "$DB" "$DB.wal" "$SUMMARY_JSON"
    "$MELTANO_BIN" --environment=sandbox state clear --force \
        sandbox:tap-usersnap-to-target-duckdb >/dev/null 2>&1 || true
fi

# 2. The sandbox API, stopped whatever happens.
trap stop_sandbox EXIT
start_sandbox "$LOG_DIR" --projects 3 --feedbacks 250 --seed 7
log "sandbox at $SANDBOX_URL (pid $SANDBOX_PID)"

RUN_ARGS=()
if [ -f "$DB" ]; then
    FIRST_RUN=0
    pid="$(sandbox_call GET /_sandbox/stats | "$PROJECT_ROOT/.venv/bin/python" -c \
        'import json, sys; print(sorted(json.load(sys.stdin)["projects"])[0])')"
    changed="$(sandbox_call POST /_sandbox/change "{\"project_id\": \"$pid\", \"k\": 5}")"
    added="$(sandbox_call POST /_sandbox/add "{\"project_id\": \"$pid\", \"n\": 3}")"
    log "second run: changed 5 and added 3 feedbacks in project $pid"
    log "  changed: $changed"
    log "  added:   $added"
else
    FIRST_RUN=1
    # No warehouse file: load everything, whatever state Meltano still has.
    RUN_ARGS+=(--full-refresh)
    rm -f "$SUMMARY_JSON"
fi

# 3. The pipeline.
export TAP_USERSNAP_API_URL="$SANDBOX_URL"
export TAP_USERSNAP_JWT_ID="$SANDBOX_JWT_ID" TAP_USERSNAP_JWT_SECRET="$SANDBOX_JWT_SECRET"
export TARGET_DUCKDB_FILEPATH="$DB"
SINCE="$("$DUCK_PY" -c 'import datetime; print(datetime.datetime.now().isoformat())')"
log "meltano --environment=sandbox run usersnap-to-warehouse ${RUN_ARGS[*]:-}"
t_run=$(date +%s)
if ! "$MELTANO_BIN" --environment=sandbox run usersnap-to-warehouse "${RUN_ARGS[@]}" \
    >"$LOG_DIR/meltano-run.log" 2>&1; then
    tail -n 60 "$LOG_DIR/meltano-run.log" >&2
    die "meltano run failed (full log: $LOG_DIR/meltano-run.log)"
fi
log "meltano run took $(( $(date +%s) - t_run ))s"

# 4. What landed.
echo
echo "DuckDB file: $DB   (schema usersnap)"
"$DUCK_PY" "$PROJECT_ROOT/scripts/warehouse_summary.py" --db "$DB" --schema usersnap \
    --since "$SINCE" --previous "$SUMMARY_JSON" --save "$SUMMARY_JSON"
echo
if [ "$FIRST_RUN" = 1 ]; then
    echo "First run: full load. Run 'bash scripts/demo.sh' again for an incremental run."
else
    echo "Incremental run: 'written' counts the rows this run inserted or merged on their keys:"
    echo "the changed and added feedbacks, the records at the bookmark (re-sent, merged, not"
    echo "duplicated) and the small full-table streams. 'change' is the row-count difference"
    echo "(0 when the sandbox re-adds the same seeded feedbacks as in an earlier run)."
fi
query="bash scripts/query.sh \"FROM usersnap.feedbacks LIMIT 5\""
[ "$DB" = "$PROJECT_ROOT/output/warehouse.duckdb" ] || query="TARGET_DUCKDB_FILEPATH='$DB' $query"
echo "Query it:  $query"
log "demo done in $(( $(date +%s) - T0 ))s"
