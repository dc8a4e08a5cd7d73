#!/usr/bin/env bash
# Everything CI checks: install, build, lint, then every test (unit tests
# beside the code and end-to-end tests against the real dataset).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dataset-fashion-mnist
npm run lint
node scripts/run-tests.mjs "$@"
