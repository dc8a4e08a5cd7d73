#!/usr/bin/env bash
# Compiles cvc's WebAssembly kernels (packages/tfjs-runtime/csrc/*.c) into
# packages/tfjs-runtime/wasm/, once with plain SIMD and once with relaxed SIMD.
# The .wasm files are committed; rebuild them with this script (it needs
# clang-16 and lld-16: apt-get install clang-16 lld-16) after changing the C
# source. test/wasm-build.test.ts checks they match the source.
# Usage: scripts/build-wasm.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-packages/tfjs-runtime/wasm}
CLANG=${CLANG:-clang-16}
LLD=${WASM_LD:-wasm-ld-16}
for tool in "$CLANG" "$LLD"; do
  command -v "$tool" >/dev/null || { echo "build-wasm: $tool not found (apt-get install clang-16 lld-16)" >&2; exit 1; }
done
mkdir -p "$out"
# No data segment and no stack: the module imports tfjs-backend-wasm's memory.
common=(--target=wasm32 -O3 -msimd128 -mbulk-memory -nostdlib -ffreestanding -fno-builtin-malloc
  -Wall -Wextra -Werror -Wno-unused-parameter
  -Wl,--no-entry -Wl,--import-memory -Wl,--strip-all "-fuse-ld=$(command -v "$LLD")")
"$CLANG" "${common[@]}" -o "$out/cvc-conv-simd.wasm" packages/tfjs-runtime/csrc/conv.c
"$CLANG" "${common[@]}" -mrelaxed-simd -DCVC_RELAXED -o "$out/cvc-conv-relaxed.wasm" packages/tfjs-runtime/csrc/conv.c
# Shared-memory builds of the same kernels, for the thread pool (src/wasm-pool.ts): with more than
# one wasm thread the backend's memory is a shared WebAssembly.Memory, which only a module that
# declares its imported memory shared (atomics, up to 4 GiB) may import.
shared=(-matomics -Wl,--shared-memory -Wl,--max-memory=4294967296)
"$CLANG" "${common[@]}" "${shared[@]}" -o "$out/cvc-conv-simd-shared.wasm" packages/tfjs-runtime/csrc/conv.c
"$CLANG" "${common[@]}" "${shared[@]}" -mrelaxed-simd -DCVC_RELAXED -o "$out/cvc-conv-relaxed-shared.wasm" packages/tfjs-runtime/csrc/conv.c
ls -l "$out"/cvc-conv-*.wasm >&2

# --- elementwise kernels (packages/tfjs-runtime, src/wasm-elementwise.ts): plain SIMD, the backend's memory.
"$CLANG" "${common[@]}" -o "$out/cvc-elementwise.wasm" packages/tfjs-runtime/csrc/elementwise.c
# and its shared-memory build, for a backend with more than one wasm thread (kernels run on the calling thread)
"$CLANG" "${common[@]}" "${shared[@]}" -o "$out/cvc-elementwise-shared.wasm" packages/tfjs-runtime/csrc/elementwise.c
ls -l "$out"/cvc-elementwise*.wasm >&2
# --- end of elementwise kernels

# --- k-means kernels (packages/clustering): one plain-SIMD module, float64, importing its memory.
kout=${1:-packages/clustering/wasm}
mkdir -p "$kout"
"$CLANG" "${common[@]}" -o "$kout/cvc-kmeans.wasm" packages/clustering/csrc/kmeans.c
ls -l "$kout"/cvc-kmeans.wasm >&2
# --- end of k-means kernels
