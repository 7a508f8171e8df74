#!/bin/sh
# Debian's chromium, used headless by scripts/docs-screenshot.ts to render /docs (no browser download).
set -e
if command -v chromium >/dev/null 2>&1; then exit 0; fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
command -v chromium
