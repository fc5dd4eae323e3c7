#!/usr/bin/env bash
# Runs every check of the project: formatting, clippy, unit and integration tests (with a
# real Secrets Manager-compatible server, moto, started by the tests), the SAM template
# lint, the local end-to-end demo and the sign-up page in headless Chromium. Installs what it
# needs first: Python tools into .venv, Debian's Chromium when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/tools.sh
export PATH="$PWD/.venv/bin:$PATH"
export SAM_CLI_TELEMETRY=0

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

# --all-features: the fuzz targets' entry points too (tests/fuzz_regressions.rs).
step "cargo clippy"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

step "cargo test"
# A hung test fails the run within 40 minutes instead of holding CI to its limit (the whole
# suite takes about 6 here).
timeout --foreground 2400 cargo test --workspace --all-features --locked ||
  { rc=$?; [ "$rc" -eq 124 ] && echo "cargo test did not finish within 40 minutes: a test hangs"; exit "$rc"; }

step "events/ are up to date with scripts/make_events.py"
tmp_events=$(mktemp -d)
trap 'rm -rf "$tmp_events"' EXIT
python3 scripts/make_events.py --out "$tmp_events" 2>/dev/null
diff -r events "$tmp_events" >/dev/null || { echo "events/ differ from scripts/make_events.py output: run it and commit"; exit 1; }

step "sam validate --lint and cfn-lint"
sam validate --lint --template template.yaml
cfn-lint template.yaml
python3 scripts/check_template.py

# What `sam deploy` would upload: the template's rust-cargolambda builds (arm64, release, with
# cargo-lambda and zig from .venv; about 7 minutes from clean here).
step "sam build (arm64) and its bootstraps"
sam build --template template.yaml
python3 scripts/check_bootstraps.py

step "local end-to-end demo (cargo lambda watch + ActiveCampaign stand-in)"
bash scripts/demo.sh --check

step "the sign-up page in headless Chromium (examples/signup.html)"
bash scripts/browser_tools.sh
python3 scripts/browser_check.py

echo
echo "All checks passed."
