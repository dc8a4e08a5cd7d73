import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { convModuleBytes, selectWasmConv } from './wasm-conv.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const W = (
  globalThis as unknown as {
    WebAssembly: {
      Module: new (b: Uint8Array) => object & { exports?: never };
      Instance: new (m: object, i: object) => { exports: Record<string, (...a: number[]) => unknown> };
      Memory: new (d: { initial: number; maximum?: number; shared?: boolean }) => { buffer: ArrayBuffer };
    };
  }
).WebAssembly;
const wasmModuleApi = (
  globalThis as unknown as {
    WebAssembly: { Module: { imports(m: object): { module: string; name: string; kind: string }[]; exports(m: object): { name: string }[] } };
  }
).WebAssembly.Module;

/** Section ids of a wasm binary (0 custom, 1 type, 2 import, ..., 11 data, 12 data count). */
function sections(b: Uint8Array): number[] {
  const ids: number[] = [];
  let i = 8;
  while (i < b.length) {
    ids.push(b[i++] as number);
    let n = 0;
    let shift = 0;
    let c: number;
    do {
      c = b[i++] as number;
      n |= (c & 0x7f) << shift;
      shift += 7;
    } while (c & 0x80);
    i += n;
  }
  return ids;
}

selectWasmConv('auto'); // turns on relaxed SIMD where Node needs the flag

for (const [impl, shared] of [
  ['simd', false],
  ['relaxed-simd', false],
  ['simd', true],
  ['relaxed-simd', true],
] as const) {
  const name = `${impl}${shared ? ' shared-memory' : ''}`;
  test(`${name} module: imports only the backend's memory, has no data segment, exports the kernels`, () => {
    const bytes = convModuleBytes(impl, shared);
    const ids = sections(bytes);
    assert.ok(!ids.includes(11) && !ids.includes(12), `no data section (sections ${ids.join(',')})`);
    const m = new W.Module(bytes);
    assert.deepEqual(wasmModuleApi.imports(m), [{ module: 'env', name: 'memory', kind: 'memory' }]);
    assert.deepEqual(
      wasmModuleApi
        .exports(m)
        .map((e) => e.name)
        .sort(),
      [
        'batch_norm',
        'conv2d',
        'conv2d_filter',
        'conv2d_filter_narrow',
        'conv2d_narrow',
        'copy_cols',
        'copy_rows',
        'max_pool_grad',
        'pad_nhwc',
        'sum_rows',
        'sum_rows_acc',
        'transpose2d',
        'upsample_nearest_grad',
      ],
    );
  });

  test(`${name} module: writes only its output buffers (it shares tfjs-backend-wasm's heap)`, () => {
    const memory = new W.Memory(shared ? { initial: 64, maximum: 128, shared: true } : { initial: 64 }); // 4 MiB
    const k = new W.Instance(new W.Module(convModuleBytes(impl, shared)), { env: { memory } }).exports;
    const heap = new Uint8Array(memory.buffer);
    heap.fill(0xab);
    const f = new Float32Array(memory.buffer);
    // Inputs at 2 MiB, outputs at 3 MiB; everything below 2 MiB (where a C stack or static data would live) must stay 0xab.
    const X = 2 << 20;
    const Y = 3 << 20;
    const [n, h, w, ci, kh, kw] = [2, 6, 7, 3, 3, 3];
    const hp = h + 2;
    const wp = w + 2;
    const xp = X;
    const wt = X + 4 * n * hp * wp * ci + 64;
    for (let i = 0; i < n * hp * wp * ci; i++) f[xp / 4 + i] = (i % 13) / 13;
    for (let i = 0; i < kh * kw * ci * 8; i++) f[wt / 4 + i] = (i % 5) / 5;
    const rows = Y + (512 << 10);
    const acc = Y + (768 << 10);
    heap.fill(0, Y, Y + (256 << 10));
    heap.fill(0, acc, acc + 1024);
    k['conv2d']!(xp, n, hp, wp, ci, wt, kh, kw, 8, 1, 1, Y, h, w, 0, n * h);
    k['conv2d_narrow']!(xp, n, hp, wp, ci, wt, kh, kw, 2, 1, 1, Y, h, w, 0, n * h);
    k['conv2d_filter']!(xp, n, hp, wp, ci, wt, h, w, 4, 1, 1, Y, kh, kw, rows, 3, 0, 1000);
    k['conv2d_filter_narrow']!(xp, n, hp, wp, ci, wt, h, w, 2, 1, 1, Y, kh, kw, rows, 3, 0, 1000);
    k['sum_rows']!(xp, n * hp, wp * ci, Y, acc, 1);
    k['sum_rows_acc']!(xp, n * hp, wp * ci, acc);
    k['pad_nhwc']!(xp, 1, 2, 2, 3, Y, 4, 4, 1, 1);
    k['copy_rows']!(xp, 5, 3, Y, 4);
    k['transpose2d']!(xp, 5, 3, Y);
    k['upsample_nearest_grad']!(xp, n, hp, wp - 1, ci, 2, 2, Y);
    k['batch_norm']!(xp, 20, ci, wt, wt, wt, Y);
    k['max_pool_grad']!(xp, n, hp, wp, ci, wt, 3, 3, 2, 2, 2, 2, 0, 0, Y);
    const low = heap.subarray(0, X);
    assert.ok(
      low.every((b) => b === 0xab),
      `byte ${low.findIndex((b) => b !== 0xab)} below the buffers was written`,
    );
  });
}

test('the committed .wasm files are what scripts/build-wasm.sh builds from csrc/conv.c', (t) => {
  const have = (tool: string) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
  if (!have('clang-16') || !have('wasm-ld-16')) {
    t.skip('clang-16 and lld-16 are not installed (scripts/test.sh installs them where the distribution has them)');
    return;
  }
  const out = mkdtempSync(join(tmpdir(), 'cvc-wasm-'));
  try {
    const r = spawnSync('bash', [join(root, 'scripts/build-wasm.sh'), out], { cwd: root, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    for (const f of ['cvc-conv-simd.wasm', 'cvc-conv-relaxed.wasm', 'cvc-conv-simd-shared.wasm', 'cvc-conv-relaxed-shared.wasm']) {
      assert.ok(
        Buffer.from(readFileSync(join(out, f))).equals(readFileSync(join(root, 'packages/tfjs-runtime/wasm', f))),
        `packages/tfjs-runtime/wasm/${f} is out of date with csrc/conv.c: run scripts/build-wasm.sh and commit the result`,
      );
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
