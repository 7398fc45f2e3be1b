#!/usr/bin/env bash
# Query the demo's DuckDB warehouse (after `bash scripts/demo.sh`), e.g.
#   bash scripts/query.sh "FROM usersnap.feedbacks LIMIT 5"
#   bash scripts/query.sh "SELECT status_type, count(*) FROM usersnap.feedbacks GROUP BY 1"
# With target-duckdb's own duckdb (the version that wrote the file), read-only, so it never
# locks the file for the next run. The file: $TARGET_DUCKDB_FILEPATH, else output/warehouse.duckdb.
set -euo pipefail
# shellcheck source=scripts/_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

[ $# -eq 1 ] || die 'usage: bash scripts/query.sh "SQL"'
DB="${TARGET_DUCKDB_FILEPATH:-$PROJECT_ROOT/output/warehouse.duckdb}"
DUCK_PY="$PROJECT_ROOT/.meltano/loaders/target-duckdb/venv/bin/python"
[ -f "$DB" ] || die "$DB not found: run 'bash scripts/demo.sh' first"
[ -x "$DUCK_PY" ] || die "target-duckdb is not installed: run 'bash scripts/demo.sh' first"
exec "$DUCK_PY" - "$DB" "$1" <<'PY'
import sys

import duckdb

db, sql = sys.argv[1:3]
with duckdb.connect(db, read_only=True) as con:
    con.sql(sql).show(max_width=200)
PY
