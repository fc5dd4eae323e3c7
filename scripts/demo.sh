#!/usr/bin/env bash
# The local end-to-end demo: no AWS account, no ActiveCampaign account. See scripts/demo.py.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/tools.sh
export PATH="$PWD/.venv/bin:$PATH"
cargo build --bins
exec python3 scripts/demo.py "$@"
