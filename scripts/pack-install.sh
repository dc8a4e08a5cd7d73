#!/usr/bin/env bash
# Installs cvc from tarballs, as a user without a checkout would, and runs it:
# `npm pack` of the CLI, the coordinator, the worker and every workspace
# package they need; `npm install` of the tarballs into an empty directory
# outside the repository (third-party dependencies from the npm registry,
# --prefer-offline; the optional native TensorFlow bindings are left out, so
# the workers use cvc's wasm backend); then, from that directory only:
#   npx cvc --help, npx cvc local up, cvc dataset import fashion-mnist
#   --limit 500, cvc run submit --watch, cvc encoder fetch, and Ctrl-C
#   (SIGINT) of local up, which must exit 130 and leave nothing running.
# Usage: scripts/pack-install.sh [WORKDIR]   (default: a new temporary directory;
# kept afterwards for a look). PACK_SKIP_BUILD=1 skips `tsc -b`.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-$(mktemp -d /tmp/cvc-pack-install.XXXXXX)}"
mkdir -p "$work"
work="$(cd "$work" && pwd)"
case "$work/" in "$repo"/*) echo "pack-install: $work is inside the checkout; choose a directory outside it" >&2; exit 2 ;; esac
tarballs="$work/tarballs"
app="$work/app"
rm -rf "$tarballs" "$app"
mkdir -p "$tarballs" "$app"
step() { printf '\n$ %s\n' "$*"; }

# The services, the CLI and every workspace package they import (the root
# package.json's workspaces, in dependency order).
workspaces=(packages/core packages/data packages/tfjs-runtime packages/model packages/clustering packages/report packages/proto packages/storage packages/messaging packages/metrics packages/security services/coordinator services/worker packages/cli)

cd "$repo"
if [ "${PACK_SKIP_BUILD:-}" != 1 ]; then
  step npx tsc -b
  npx tsc -b
fi
step npm pack --pack-destination "$tarballs" "${workspaces[@]/#/-w }"
npm pack --silent --pack-destination "$tarballs" $(printf -- '-w %s ' "${workspaces[@]}")
ls -l "$tarballs"

cd "$app"
step "cd $app && npm init -y && npm install --prefer-offline $tarballs/*.tgz"
npm init -y >/dev/null
# Optional dependencies included: sharp's libvips binaries are optional packages per platform (TensorFlow's
# native packages are optional too; their install fails without internet and npm goes on without them).
npm install --no-audit --no-fund --prefer-offline "$tarballs"/*.tgz
# Nothing may point back into the checkout.
if find node_modules -type l -lname "$repo*" | grep -q .; then
  echo "pack-install: links into $repo:" >&2
  find node_modules -type l -lname "$repo*" >&2
  exit 1
fi
ls node_modules/@cvc

export CVC_CACHE_DIR="$app/.cache/datasets"
unset CVC_COORDINATOR_BIN CVC_WORKER_BIN CVC_COORDINATOR CVC_TOKEN CVC_TLS_CA CVC_S3_ENDPOINT
step npx cvc --help
npx cvc --help | head -5
step npx cvc run submit --help
npx cvc run submit --help

# In the background through the installed bin (npx in front would own the pid the Ctrl-C goes to).
step "node_modules/.bin/cvc local up --workers 2 --dir .cvc/local &"
node_modules/.bin/cvc local up --workers 2 --dir .cvc/local >local-up.log 2>&1 &
up=$!
cleanup() { if kill -0 "$up" 2>/dev/null; then kill -INT "$up"; wait "$up" || true; fi; }
trap cleanup EXIT
for _ in $(seq 1 240); do
  grep -q 'Ctrl-C stops everything' local-up.log 2>/dev/null && break
  kill -0 "$up" 2>/dev/null || { cat local-up.log >&2; echo "pack-install: cvc local up exited" >&2; exit 1; }
  sleep 0.5
done
cat local-up.log

step "npx cvc local up --dir .cvc/local   (a second one on the same directory)"
second=0
npx cvc local up --workers 0 --dir .cvc/local || second=$?
echo "exit code $second"
[ "$second" = 1 ] || { echo "pack-install: a second cvc local up on the same directory was not refused" >&2; exit 1; }

step npx cvc dataset import fashion-mnist --folds 2 --limit 500
npx cvc dataset import fashion-mnist --folds 2 --limit 500
step "an image folder (PNG written with the installed sharp): npx cvc dataset import ./photos --name photos --size 28x28 --channels 1"
node --input-type=module -e '
import sharp from "sharp";
import { mkdirSync } from "node:fs";
for (const cls of ["dark", "light"]) {
  mkdirSync(`photos/${cls}`, { recursive: true });
  for (let i = 0; i < 12; i++) {
    const v = cls === "dark" ? 20 + i : 220 - i;
    await sharp({ create: { width: 40, height: 32, channels: 3, background: { r: v, g: v, b: v } } }).png().toFile(`photos/${cls}/${i}.png`);
  }
}'
npx cvc dataset import ./photos --name photos --size 28x28 --channels 1 --folds 2
step npx cvc run submit --dataset fashion-mnist --model seed-mnist --folds 2 --epochs 1 --watch --json
npx cvc run submit --dataset fashion-mnist --model seed-mnist --folds 2 --epochs 1 --watch --json >run.json
node -e 'const r = JSON.parse(require("fs").readFileSync("run.json", "utf8")); console.log(`run ${r.id}: ${r.state}; folds ${r.folds.map((f) => `${f.fold}:${f.state}`).join(" ")}`); if (r.state !== "RUN_STATE_SUCCEEDED") process.exit(1)'
run_id="$(node -p 'JSON.parse(require("fs").readFileSync("run.json", "utf8")).id')"

step "npx cvc run submit ... --epochs 3 (no --watch); npx cvc run watch RUN, Ctrl-C after its first lines"
run2="$(npx cvc run submit --dataset fashion-mnist --model seed-mnist --folds 2 --epochs 3)"
node_modules/.bin/cvc run watch "$run2" 2>watch.log &
watcher=$!
for _ in $(seq 1 120); do grep -q "^fold 1" watch.log 2>/dev/null && break; sleep 0.5; done
kill -INT "$watcher"
wcode=0
wait "$watcher" || wcode=$?
cat watch.log
echo "cvc run watch exited with $wcode"
[ "$wcode" = 130 ] || { echo "pack-install: expected exit code 130 from run watch" >&2; exit 1; }
step npx cvc run cancel "$run2"
npx cvc run cancel "$run2" | head -1
step npx cvc run show "$run_id"
npx cvc run show "$run_id"
step npx cvc encoder fetch "$run_id" --out encoder
npx cvc encoder fetch "$run_id" --out encoder
ls -l encoder

step "kill -INT <cvc local up> (Ctrl-C)"
descendants() { local c; for c in $(ps -o pid= --ppid "$1"); do echo "$c"; descendants "$c"; done; }
children="$(descendants "$up" | tr '\n' ' ')"
kill -INT "$up"
code=0
wait "$up" || code=$?
trap - EXIT
tail -n 2 local-up.log
echo "cvc local up exited with $code"
[ "$code" = 130 ] || { echo "pack-install: expected exit code 130" >&2; exit 1; }
for pid in $children; do
  if kill -0 "$pid" 2>/dev/null; then echo "pack-install: process $pid was left running" >&2; exit 1; fi
done
echo "no process left running (were: $children)"
echo
echo "pack-install: OK (installed in $app)"
