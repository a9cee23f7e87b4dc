#!/usr/bin/env bash
# The viewer test's tools (tests/viewer/): Debian chromium, orthanc + orthanc-dicomweb,
# Node.js/npm; from npm the OHIF viewer's prebuilt dist/ (@ohif/app, pinned) and
# playwright-core (a driver only: it downloads no browser, the test uses /usr/bin/chromium).
# Everything npm fetches goes to tests/viewer/.node/ (git-ignored); re-running is a no-op.
set -euo pipefail
OHIF_VERSION="${OHIF_VERSION:-3.13.2}"
PLAYWRIGHT_VERSION="${PLAYWRIGHT_VERSION:-1.65.1}"
here="$(cd "$(dirname "$0")/../viewer" && pwd)"
dest="$here/.node"
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v Orthanc >/dev/null 2>&1 || need+=(orthanc)
ls /usr/share/orthanc/plugins/libOrthancDicomWeb.so >/dev/null 2>&1 || need+=(orthanc-dicomweb)
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
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
  if command -v service >/dev/null 2>&1; then $SUDO service orthanc stop >/dev/null 2>&1 || true; fi
fi
mkdir -p "$dest"
if [ ! -f "$dest/ohif-$OHIF_VERSION/dist/index.html" ]; then
  echo "fetching @ohif/app@$OHIF_VERSION (prebuilt dist/)"
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent "@ohif/app@$OHIF_VERSION" >/dev/null && tar xzf ./*.tgz)
  rm -rf "$dest/ohif-$OHIF_VERSION"
  mkdir -p "$dest/ohif-$OHIF_VERSION"
  mv "$tmp/package/dist" "$dest/ohif-$OHIF_VERSION/dist"
  rm -rf "$tmp"
fi
if [ ! -f "$dest/node_modules/playwright-core/package.json" ] || \
   ! grep -q "\"version\": \"$PLAYWRIGHT_VERSION\"" "$dest/node_modules/playwright-core/package.json"; then
  echo "fetching playwright-core@$PLAYWRIGHT_VERSION (driver only, no browser download)"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --silent --no-save --no-package-lock --prefix "$dest" \
    "playwright-core@$PLAYWRIGHT_VERSION" >/dev/null
fi
echo "$OHIF_VERSION" > "$dest/OHIF_VERSION"
