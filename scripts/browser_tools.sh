#!/usr/bin/env bash
# Installs Debian's Chromium and ChromeDriver for scripts/browser_check.py, if missing.
# Safe to run again: it does nothing when both are there.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
echo "Installing Chromium and ChromeDriver (Debian packages chromium, chromium-driver)..." >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
