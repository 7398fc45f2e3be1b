#!/usr/bin/env bash
# Install Apache Airflow into its own venv (.tools/airflow), pinned by
# orchestrate/airflow/constraints-py<X.Y>.txt when one exists for this Python.
#   bash scripts/install-airflow.sh      # then: .tools/airflow/bin/airflow version
set -euo pipefail
# shellcheck source=scripts/_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
t0=$(date +%s)
install_airflow
log "airflow $AIRFLOW_VERSION ready in $(( $(date +%s) - t0 ))s: $AIRFLOW_BIN"
