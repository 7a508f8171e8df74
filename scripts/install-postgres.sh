#!/usr/bin/env bash
# Debian's PostgreSQL server binaries, for the records tests and the benchmark: they start throwaway clusters of
# their own (test/helpers/postgres.ts: initdb + pg_ctl in a temporary directory, as an unprivileged user), never a
# system service. Skips apt when a server is installed; waits and retries while another apt or dpkg holds its lock.
set -euo pipefail
installed () { compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && command -v runuser >/dev/null; }
if ! installed; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  for attempt in $(seq 1 30); do
    if $SUDO apt-get -o DPkg::Lock::Timeout=60 update -qq &&
       DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=60 install -y -qq postgresql; then
      break
    fi
    echo "apt-get failed (attempt $attempt; another apt or dpkg may hold the lock); retrying in 10 s" >&2
    sleep 10
  done
fi
installed || { echo "PostgreSQL server binaries not found under /usr/lib/postgresql after installing" >&2; exit 1; }
echo "postgresql ok: $(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
