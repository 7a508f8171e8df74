#!/usr/bin/env bash
# Installs the Debian packages named as arguments that are not installed yet (nothing to do when all are).
# Several sessions may run apt at once on one machine: a held dpkg lock is waited for (apt's own
# DPkg::Lock::Timeout), and a failed attempt is retried a few times before giving up with apt's message.
set -euo pipefail
missing=()
for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
for attempt in 1 2 3; do
  if $SUDO apt-get -o DPkg::Lock::Timeout=300 update -qq &&
     DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
       "${missing[@]}" >/dev/null; then
    exit 0
  fi
  echo "apt-install: attempt $attempt to install ${missing[*]} failed; retrying" >&2
  sleep $((attempt * 10))
done
echo "apt-install: could not install ${missing[*]}" >&2
exit 1
