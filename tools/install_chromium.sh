#!/usr/bin/env bash
# Debian's chromium for the dashboard's browser tests (tests/dashboard/test_browser.py drives it with
# Playwright's Python API; no browser is downloaded). Installs it with apt-get when it is missing.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "no apt-get here: install chromium yourself (or set CHROMIUM=/path/to/chromium)" >&2; exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if sudo -n true 2>/dev/null; then SUDO="sudo -n"; else echo "not root and no sudo: cannot apt-get install chromium" >&2; exit 1; fi
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
command -v chromium
