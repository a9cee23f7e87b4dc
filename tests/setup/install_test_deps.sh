#!/usr/bin/env bash
# Install the Debian packages the test suite talks to, when missing:
# DCMTK (storescu, echoscu, findscu, dsrdump, storescp), dicom3tools (dciodvfy),
# Orthanc (a real PACS), Redis and PostgreSQL (the scale-out tests start their
# own throw-away servers on 127.0.0.1), iproute2 (private loopback network),
# Chromium (headless: the audit report is opened in a real browser),
# openssl (certificates for the TLS tests).
set -euo pipefail
need=()
command -v storescu >/dev/null 2>&1 && command -v dsrdump >/dev/null 2>&1 || need+=(dcmtk)
command -v dciodvfy >/dev/null 2>&1 || need+=(dicom3tools)
command -v Orthanc >/dev/null 2>&1 || need+=(orthanc)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v unshare >/dev/null 2>&1 || need+=(util-linux)
[ -x /usr/bin/chromium ] || need+=(chromium)  # the audit report (and viewer) tests open pages in headless Chromium
command -v openssl >/dev/null 2>&1 || need+=(openssl)   # test certificates for the DICOM TLS tests
if [ ${#need[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  # one 'apt-get update' serves both install scripts (make test-deps runs them one after the other)
  stamp="${TMPDIR:-/tmp}/noduled-apt-update.stamp"
  if [ -z "$(find "$stamp" -mmin -60 2>/dev/null)" ]; then
    $SUDO apt-get update -qq
    touch "$stamp"
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # the packages may start system-wide instances; the tests start their own
  if command -v service >/dev/null 2>&1; then
    for svc in orthanc redis-server postgresql; do $SUDO service "$svc" stop >/dev/null 2>&1 || true; done
  fi
fi
