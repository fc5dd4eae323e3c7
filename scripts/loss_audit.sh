#!/usr/bin/env bash
# The loss audit: the local stack under ActiveCampaign faults, losses counted. See scripts/loss_audit.py.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/tools.sh
export PATH="$PWD/.venv/bin:$PATH"
cargo build --bins
exec python3 scripts/loss_audit.py "$@"
