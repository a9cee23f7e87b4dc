#!/usr/bin/env bash
# Run pytest, inside a private network namespace (only loopback) when possible.
set -uo pipefail
pytest_bin="$1"; shift
if [ "$(id -u)" -eq 0 ] && unshare --net true 2>/dev/null; then
  exec unshare --net -- bash -c 'ip link set lo up && exec "$0" "$@"' "$pytest_bin" "$@"
fi
echo "note: no private network namespace here; test servers bind to 127.0.0.1" >&2
exec "$pytest_bin" "$@"
