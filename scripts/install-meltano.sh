#!/usr/bin/env bash
# Meltano into .tools/meltano (its own venv) and the project's plugins (`meltano install`).
# Cheap when nothing changed (stamp on meltano.yml + pyproject.toml). Used by demo.sh,
# .ci/run and the warehouse tests' fixtures.
#   bash scripts/install-meltano.sh            # then: .tools/meltano/bin/meltano --version
#   MELTANO_FORCE_INSTALL=1 bash scripts/install-meltano.sh
set -euo pipefail
# shellcheck source=scripts/_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
t0=$(date +%s)
meltano_install "$@"
log "meltano ready in $(( $(date +%s) - t0 ))s: $MELTANO_BIN"
