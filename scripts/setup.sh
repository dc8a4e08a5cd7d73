#!/usr/bin/env bash
# Installs what cvc needs on a fresh Debian/Ubuntu machine with Node 20:
# Debian packages (only those missing, after one apt-get update), the npm
# packages (npm ci), and the compiled workspace (tsc -b).
# Usage: scripts/setup.sh [DEBIAN_PACKAGE...]   (a name ending in '?' is optional:
# installed where the distribution has it, skipped where it does not)
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
optional=()
for arg in "$@"; do
  pkg=${arg%\?}
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' && continue
  if [ "$pkg" != "$arg" ]; then optional+=("$pkg"); else need+=("$pkg"); fi
done
if [ ${#need[@]} -gt 0 ] || [ ${#optional[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  for pkg in "${optional[@]}"; do
    if apt-cache show "$pkg" >/dev/null 2>&1; then need+=("$pkg"); else echo "setup: optional package $pkg is not available here; skipping it" >&2; fi
  done
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need[*]}" >&2
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
