#!/usr/bin/env bash
# Install everything, then run the whole test suite (what CI runs: .ci/run calls this).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --test
PY=${PYTHON:-python3}
echo "== pytest"
exec "$PY" -m pytest -p no:cacheprovider -q "$@"
