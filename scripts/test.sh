#!/usr/bin/env bash
# The tests in one command; arguments go to pytest:
#   bash scripts/test.sh                          # all tests (about 4 minutes)
#   bash scripts/test.sh tests/test_sync.py -x -q
# Needs only Python 3.11+. It installs uv if missing and the project venv with the test and
# lint tools (uv sync --all-groups, from uv.lock), then runs .venv/bin/pytest. The tests that
# need them install Meltano and its plugins (.tools/meltano, .meltano/) and Airflow
# (.tools/airflow) on first use, and start a throw-away PostgreSQL (scripts/pg.sh; the server
# binaries must be installed) unless TAP_USERSNAP_TEST_PG_DSN names one, as
# `eval "$(bash scripts/pg.sh start)"` does. CI (.ci/run) runs exactly this.
set -euo pipefail
# shellcheck source=scripts/_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

sync_project --all-groups
cd "$PROJECT_ROOT"
exec .venv/bin/pytest "$@"
