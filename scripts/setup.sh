#!/usr/bin/env bash
# Installs what cvc needs on a fresh Debian/Ubuntu machine with Node 20:
# Debian packages (only those missing, after one apt-get update), the npm
# packages (npm ci), and the compiled workspace (tsc -b).
# Usage: scripts/setup.sh [DEBIAN_PACKAGE...]
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need[*]}" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

node -e 'const [maj] = process.versions.node.split(".").map(Number); if (maj < 20) { console.error(`setup: cvc needs Node.js >= 20, found ${process.version}`); process.exit(1); }'

# Only reinstall when the lockfile changed since the last install.
stamp=node_modules/.cvc-lock-sha
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi
npx tsc -b
