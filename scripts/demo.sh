#!/usr/bin/env bash
# The main job on the embedded default: a short 5-fold cross-validation of the
# seed's MNIST autoencoder on the real Fashion-MNIST (Debian's
# dataset-fashion-mnist), printing the summary table.
# Extra arguments are passed to `cvc cv` (e.g. --epochs 100 without --limit
# for the seed's full protocol).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dataset-fashion-mnist
args=(--dataset fashion-mnist --model seed-mnist --folds 5 --epochs 2 --limit 2000 --out runs/demo)
exec node packages/cli/bin/cvc.js cv --local "${args[@]}" "$@"
