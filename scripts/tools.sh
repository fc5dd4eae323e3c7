#!/usr/bin/env bash
# Installs the project's tools into .venv (Python packages from PyPI): a Secrets Manager-
# compatible server for tests (moto), cargo-lambda (with zig) for local runs and builds,
# and the SAM CLI and cfn-lint for the template. Safe to run again: it skips what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
REQUIREMENTS=scripts/requirements-tools.txt
STAMP="$VENV/.installed-$(sha256sum "$REQUIREMENTS" | cut -c1-16)"

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if [ ! -f "$STAMP" ]; then
  echo "Installing tools into $VENV (moto, cargo-lambda, aws-sam-cli, cfn-lint)..." >&2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
  rm -f "$VENV"/.installed-*
  touch "$STAMP"
fi
