#!/usr/bin/env bash
# Runs every fuzz target for $1 seconds each (default 60); see scripts/fuzz.py.
exec python3 "$(dirname "$0")/fuzz.py" "$@"
