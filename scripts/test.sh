#!/usr/bin/env bash
# Everything CI checks: install, build, lint, the generated gRPC code is up to
# date, then every test (unit tests beside the code, integration tests against
# real nats-server and S3 servers, end-to-end tests on the real Fashion-MNIST).
set -euo pipefail
cd "$(dirname "$0")/.."
# clang-16 and lld-16 let a test rebuild the committed wasm kernels and compare; it skips where they are missing.
bash scripts/setup.sh nats-server dataset-fashion-mnist prometheus 'clang-16?' 'lld-16?'
npm run lint
# One formatter for everyone: CI fails on code prettier would change ('npm run format' fixes it).
npm run format:check
npx buf lint
if git rev-parse --git-dir >/dev/null 2>&1; then
  npx buf generate
  if ! git diff --quiet -- packages/proto/src/gen || [ -n "$(git status --porcelain -- packages/proto/src/gen)" ]; then
    echo "test: packages/proto/src/gen is out of date with proto/: run 'npm run generate' and commit the result" >&2
    git status --short -- packages/proto/src/gen >&2
    exit 1
  fi
fi
node scripts/run-tests.mjs "$@"
