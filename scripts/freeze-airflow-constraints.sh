#!/usr/bin/env bash
# Regenerate orchestrate/airflow/constraints-py<X.Y>.txt from a clean install of
# apache-airflow==$AIRFLOW_VERSION (no constraints), after checking that it imports.
set -euo pipefail
# shellcheck source=scripts/_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
ensure_uv
py="$(pick_python)"
pyver="$("$py" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
uv venv --quiet --python "$py" "$tmp/venv"
uv pip install --quiet --python "$tmp/venv/bin/python" "apache-airflow==$AIRFLOW_VERSION"
"$tmp/venv/bin/airflow" version >/dev/null
out="$PROJECT_ROOT/orchestrate/airflow/constraints-py$pyver.txt"
{
    echo "# Frozen from a working 'uv pip install apache-airflow==$AIRFLOW_VERSION' on CPython $pyver ($(uname -sm)),"
    echo "# used as --constraint by scripts/_lib.sh install_airflow. Regenerate with scripts/freeze-airflow-constraints.sh."
    uv pip freeze --python "$tmp/venv/bin/python"
} >"$out"
log "wrote $out"
