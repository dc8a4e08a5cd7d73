#!/usr/bin/env bash
# The main job on the embedded default: starts a local cluster (nats-server
# with JetStream, an S3 server, the coordinator and one worker per core, all
# on loopback), imports the real Fashion-MNIST (Debian's dataset-fashion-mnist)
# as 5 stratified folds into S3, runs a short 5-fold CV of the seed's MNIST
# autoencoder through the cluster with a live progress line per fold, prints
# the summary table, and stops the cluster.
# Extra arguments go to `cvc run submit` (e.g. --epochs 100). DEMO_LIMIT sets
# the number of training images (default 2000; 60000 for the whole set).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh nats-server dataset-fashion-mnist

dir=.cvc/demo
rm -f "$dir/cluster.json"
node packages/cli/bin/cvc.js local up --dir "$dir" &
up=$!
trap 'kill -INT $up 2>/dev/null; wait $up 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  [ -f "$dir/cluster.json" ] && break
  kill -0 $up 2>/dev/null || { echo "demo: the local cluster failed to start (see $dir/logs)" >&2; exit 1; }
  sleep 0.5
done
[ -f "$dir/cluster.json" ] || { echo "demo: the local cluster did not start in time (see $dir/logs)" >&2; exit 1; }

cvc() { node packages/cli/bin/cvc.js "$@" --cluster "$dir/cluster.json"; }
cvc dataset import fashion-mnist --folds 5 --limit "${DEMO_LIMIT:-2000}"
cvc run submit --dataset fashion-mnist --model seed-mnist --folds 5 --epochs 2 --watch "$@"
