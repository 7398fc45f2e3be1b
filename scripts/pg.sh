#!/usr/bin/env bash
# A throw-away PostgreSQL server on 127.0.0.1 for the warehouse tests.
#
#   eval "$(bash scripts/pg.sh start)"   # start (or reuse) it; prints export lines
#   bash scripts/pg.sh env               # print the export lines of the running server
#   bash scripts/pg.sh status
#   bash scripts/pg.sh stop              # stop it and delete its data directory
#
# Exports: PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE TAP_USERSNAP_TEST_PG_DSN.
# Needs the server binaries (Debian: apt-get install postgresql; found under
# /usr/lib/postgresql/*/bin, via pg_config, or on PATH). As root, the server runs as the
# `postgres` user (PostgreSQL refuses to run as root).
#
# Environment: PG_DIR (default ${TMPDIR:-/tmp}/tap-usersnap-pg-$UID), PG_PORT (default: a
# free port), PG_USER / PG_DATABASE (default tap_usersnap / tap_usersnap_test).
set -euo pipefail
# shellcheck source=scripts/_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

PG_DIR="${PG_DIR:-${TMPDIR:-/tmp}/tap-usersnap-pg-$(id -u)}"
PG_USER="${PG_USER:-tap_usersnap}"
PG_DATABASE="${PG_DATABASE:-tap_usersnap_test}"
DATA="$PG_DIR/data"
SOCK="$PG_DIR/sock"
ENV_FILE="$PG_DIR/env.sh"
LOGFILE="$PG_DIR/postgres.log"

find_bindir() {
    local d
    if [ -n "${PG_BINDIR:-}" ]; then echo "$PG_BINDIR"; return; fi
    d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; return; fi
    if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
        pg_config --bindir; return
    fi
    if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return; fi
    die "PostgreSQL server binaries not found (Debian: apt-get install -y postgresql)"
}

# Run a command as the server's owner: `postgres` when we are root.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

is_running() {
    [ -f "$DATA/postmaster.pid" ] && as_owner "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

cmd_env() {
    [ -f "$ENV_FILE" ] || die "no server in $PG_DIR (run: bash scripts/pg.sh start)"
    cat "$ENV_FILE"
}

cmd_start() {
    if is_running; then
        log "postgres already running in $PG_DIR"
        cmd_env
        return
    fi
    local t0 port password
    t0=$(date +%s)
    rm -rf "$PG_DIR"
    mkdir -p "$DATA" "$SOCK"
    chmod 700 "$DATA"
    chmod 755 "$PG_DIR"
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 ||
            useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
        chown -R postgres: "$PG_DIR"
        runuser -u postgres -- test -w "$DATA" ||
            die "user postgres cannot reach $PG_DIR (a parent directory is private?); set PG_DIR under /tmp"
    fi
    port="${PG_PORT:-$(free_port)}"
    password="$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"

    log "initdb $DATA"
    as_owner "$BIN/initdb" -D "$DATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
        --encoding=UTF8 --locale=C.UTF-8 >"$PG_DIR/initdb.log" 2>&1 ||
        { cat "$PG_DIR/initdb.log" >&2; die "initdb failed"; }
    log "pg_ctl start on 127.0.0.1:$port"
    as_owner "$BIN/pg_ctl" -D "$DATA" -l "$LOGFILE" -w -t 60 \
        -o "-p $port -k $SOCK -c listen_addresses=127.0.0.1 -c timezone=UTC -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        start >/dev/null ||
        { cat "$LOGFILE" >&2; die "postgres did not start"; }

    as_owner "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$port" -U postgres -d postgres <<SQL
CREATE ROLE "$PG_USER" LOGIN PASSWORD '$password' CREATEDB;
CREATE DATABASE "$PG_DATABASE" OWNER "$PG_USER";
SQL

    umask 077
    cat >"$ENV_FILE" <<EOF
export PGHOST=127.0.0.1
export PGPORT=$port
export PGUSER=$PG_USER
export PGPASSWORD=$password
export PGDATABASE=$PG_DATABASE
export TAP_USERSNAP_TEST_PG_DSN=postgresql://$PG_USER:$password@127.0.0.1:$port/$PG_DATABASE
EOF
    log "postgres ready in $(( $(date +%s) - t0 ))s (data $DATA, log $LOGFILE)"
    cat "$ENV_FILE"
}

cmd_stop() {
    if [ -f "$DATA/postmaster.pid" ]; then
        log "stopping postgres in $PG_DIR"
        as_owner "$BIN/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null 2>&1 ||
            log "pg_ctl stop failed (already stopped?)"
    fi
    rm -rf "$PG_DIR"
}

cmd_status() {
    if is_running; then
        echo "running ($PG_DIR)"
    else
        echo "stopped"
        return 3
    fi
}

BIN="$(find_bindir)"
case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    env) cmd_env ;;
    status) cmd_status ;;
    *) echo "usage: $0 start|stop|env|status" >&2; exit 2 ;;
esac
