import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRng } from '@cvc/core';
import { tf, initBackend, elementwiseCounts, elementwiseSwitch } from './index.js';
import { elementwiseModuleBytes } from './wasm-elementwise.js';
import { relErr } from './test-utils.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
await initBackend('cpu');
await initBackend('wasm');
const rng = createRng(91);
const rand = (shape: number[]): Float32Array => Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.next() * 4 - 2);

function on<T>(backend: string, fn: () => T): T {
  void tf.setBackend(backend);
  assert.equal(tf.getBackend(), backend);
  return fn();
}

/** Runs `f` on both backends with the same inputs; returns the wasm result, the cpu result and the counts' changes. */
function both(f: (a: tf.Tensor, b: tf.Tensor) => tf.Tensor, sa: number[], sb: number[]) {
  const va = rand(sa);
  const vb = rand(sb);
  const before = { ...elementwiseCounts };
  const got = on('wasm', () => tf.tidy(() => f(tf.tensor(va, sa), tf.tensor(vb, sb)).dataSync().slice()));
  const delta = Object.fromEntries(Object.entries(elementwiseCounts).map(([k, v]) => [k, v - before[k as keyof typeof before]])) as typeof elementwiseCounts;
  const want = on('cpu', () => tf.tidy(() => f(tf.tensor(va, sa), tf.tensor(vb, sb)).dataSync().slice()));
  return { got, want, delta };
}

const ops: [string, (a: tf.Tensor, b: tf.Tensor) => tf.Tensor][] = [
  ['add', (a, b) => tf.add(a, b)],
  ['sub', (a, b) => tf.sub(a, b)],
  ['mul', (a, b) => tf.mul(a, b)],
];

test('Add, Sub and Multiply match the cpu backend on every broadcast the SIMD kernels claim, and take them', () => {
  const cases: [number[], number[], keyof typeof elementwiseCounts][] = [
    [[2, 3, 5, 7], [2, 3, 5, 7], 'same'],
    [[13], [13], 'same'],
    [[1], [1], 'same'],
    [[4, 8], [4, 8], 'same'],
    [[6, 5, 7], [7], 'rows'],
    [[3, 4, 4, 9], [1, 1, 1, 9], 'rows'],
    [[2, 3, 16], [1, 16], 'rows'],
    [[7], [6, 5, 7], 'rows'],
    [[1, 1, 1, 9], [3, 4, 4, 9], 'rows'],
    [[5, 9], [], 'scalar'],
    [[], [5, 9], 'scalar'],
    [[1, 1], [4, 3], 'scalar'],
    [[4, 3], [1], 'scalar'],
  ];
  for (const [name, f] of ops) {
    for (const [sa, sb, path] of cases) {
      const { got, want, delta } = both(f, sa, sb);
      const what = `${name} ${JSON.stringify(sa)} ${JSON.stringify(sb)}`;
      assert.equal(got.length, want.length, what);
      assert.ok(relErr(got, want) < 1e-6, `${what}: rel err ${relErr(got, want)}`);
      assert.equal(delta[path], 1, `${what} took the ${path} kernel`);
    }
  }
});

test('other broadcasts and dtypes go to tfjs-backend-wasm’s kernels and stay correct', () => {
  for (const [name, f] of ops) {
    for (const [sa, sb] of [
      [
        [3, 1],
        [1, 4],
      ],
      [
        [4, 3],
        [4, 1],
      ],
      [
        [2, 1, 5],
        [3, 5],
      ],
    ] as [number[], number[]][]) {
      const { got, want, delta } = both(f, sa, sb);
      assert.ok(relErr(got, want) < 1e-6, `${name} ${JSON.stringify(sa)} ${JSON.stringify(sb)}`);
      assert.equal(delta.fallback, 1);
    }
    const ints = on('wasm', () => tf.tidy(() => Array.from(f(tf.tensor([5, -3, 7], [3], 'int32'), tf.tensor([2, 2, -4], [3], 'int32')).dataSync())));
    const want = on('cpu', () => tf.tidy(() => Array.from(f(tf.tensor([5, -3, 7], [3], 'int32'), tf.tensor([2, 2, -4], [3], 'int32')).dataSync())));
    assert.deepEqual(ints, want, `${name} int32`);
  }
});

test('the switch sends every call to tfjs-backend-wasm’s kernels', () => {
  elementwiseSwitch.enabled = false;
  try {
    const { got, want, delta } = both((a, b) => tf.add(a, b), [6, 5, 7], [7]);
    assert.ok(relErr(got, want) < 1e-6);
    assert.equal(delta.rows + delta.same + delta.scalar, 0);
  } finally {
    elementwiseSwitch.enabled = true;
  }
});

test('FusedConv2D (bias, linear or relu) matches the cpu backend through cvc’s convolution; other activations fall back', () => {
  const cases: { x: number[]; w: number[]; strides: number; pad: 'same' | 'valid'; bias: boolean; activation: 'relu' | 'linear' | 'elu'; fast: boolean }[] = [
    { x: [2, 9, 9, 3], w: [3, 3, 3, 8], strides: 1, pad: 'same', bias: true, activation: 'relu', fast: true },
    { x: [3, 10, 10, 5], w: [5, 5, 5, 6], strides: 2, pad: 'valid', bias: false, activation: 'linear', fast: true },
    { x: [2, 8, 8, 4], w: [1, 1, 4, 7], strides: 1, pad: 'same', bias: true, activation: 'linear', fast: true },
    { x: [2, 7, 7, 2], w: [3, 3, 2, 5], strides: 1, pad: 'same', bias: false, activation: 'relu', fast: true },
    { x: [2, 7, 7, 2], w: [3, 3, 2, 5], strides: 1, pad: 'same', bias: true, activation: 'elu', fast: false },
  ];
  for (const c of cases) {
    const vx = rand(c.x);
    const vw = rand(c.w);
    const vb = rand([c.w[3] as number]);
    const run = () =>
      tf.tidy(() =>
        tf.fused
          .conv2d({
            x: tf.tensor4d(vx, c.x as [number, number, number, number]),
            filter: tf.tensor4d(vw, c.w as [number, number, number, number]),
            strides: c.strides,
            pad: c.pad,
            bias: c.bias ? tf.tensor1d(vb) : undefined,
            activation: c.activation,
          })
          .dataSync()
          .slice(),
      );
    const before = elementwiseCounts.fusedConv;
    const got = on('wasm', run);
    const fast = elementwiseCounts.fusedConv - before;
    const want = on('cpu', run);
    const what = JSON.stringify(c);
    assert.ok(relErr(got, want) < 1e-4, `${what}: rel err ${relErr(got, want)}`);
    assert.equal(fast, c.fast ? 1 : 0, `${what}: cvc's path`);
    if (c.activation === 'relu') assert.ok(got.every((v) => v >= 0));
  }
});

test('the ReLU gradient is one fused kernel on wasm and cpu, equal to dy * step(x) (zeros, negatives, NaN, odd sizes)', () => {
  for (const shape of [[2, 5, 5, 7], [13], [3, 4]]) {
    const n = shape.reduce((a, b) => a * b, 1);
    const xv = rand(shape);
    xv[0] = 0;
    xv[1] = Number.NaN;
    xv[2] = -0;
    const dyv = rand(shape);
    const want = Float32Array.from(xv, (v, i) => (dyv[i] as number) * (Number.isNaN(v) ? Number.NaN : v > 0 ? 1 : 0));
    for (const backend of ['wasm', 'cpu']) {
      for (const enabled of [true, false]) {
        elementwiseSwitch.enabled = enabled;
        const before = elementwiseCounts.reluGrad;
        const got = on(backend, () =>
          tf.tidy(() => {
            const x = tf.tensor(xv, shape);
            const dy = tf.tensor(dyv, shape);
            return tf
              .grad((t: tf.Tensor) => tf.mul(tf.relu(t), dy).sum())(x)
              .dataSync()
              .slice();
          }),
        );
        elementwiseSwitch.enabled = true;
        const what = `${backend} ${JSON.stringify(shape)} fused=${enabled}`;
        assert.equal(got.length, n);
        assert.ok(Number.isNaN(got[1]), `${what}: NaN input gives NaN`);
        got[1] = 0;
        const w = want.slice();
        w[1] = 0;
        assert.ok(relErr(got, w) < 1e-6, `${what}: rel err ${relErr(got, w)}`);
        assert.equal(elementwiseCounts.reluGrad - before, enabled && backend === 'wasm' ? 1 : 0, `${what}: the wasm kernel ran`);
      }
    }
  }
});

test('the elementwise module imports only the memory and writes only its output', () => {
  const W = (
    globalThis as unknown as {
      WebAssembly: {
        Module: { new (b: Uint8Array): object; imports(m: object): { name: string; kind: string }[] };
        Instance: new (m: object, i: object) => { exports: Record<string, (...a: number[]) => void> };
        Memory: new (d: { initial: number }) => { buffer: ArrayBuffer };
      };
    }
  ).WebAssembly;
  const m = new W.Module(elementwiseModuleBytes());
  assert.deepEqual(
    W.Module.imports(m).map((i) => `${i.name}:${i.kind}`),
    ['memory:memory'],
  );
  const memory = new W.Memory({ initial: 4 });
  const k = new W.Instance(m, { env: { memory } }).exports;
  const heap = new Uint8Array(memory.buffer);
  heap.fill(0xab);
  const A = 65536;
  const OUT = 131072;
  new Float32Array(memory.buffer, A, 64).fill(1.5);
  k['binary_same']!(0, A, A + 128, OUT, 13);
  k['binary_rows']!(3, A, 3, 5, A + 128, OUT);
  k['binary_scalar']!(2, A, 11, 2, OUT);
  k['bias_act']!(OUT, 2, 7, A, 1);
  k['relu_grad']!(A, A + 64, OUT, 15);
  assert.ok(heap.subarray(0, A).every((b) => b === 0xab) && heap.subarray(A + 256, OUT).every((b) => b === 0xab), 'only the output was written');
  assert.ok(
    heap.subarray(OUT + 4 * 15, OUT + 4096).every((b) => b === 0xab),
    'nothing past the output',
  );
});

test('the committed cvc-elementwise(-shared).wasm are what scripts/build-wasm.sh builds from csrc/elementwise.c', (t) => {
  const have = (tool: string) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
  if (!have('clang-16') || !have('wasm-ld-16')) {
    t.skip('clang-16 and lld-16 are not installed (scripts/test.sh installs them where the distribution has them)');
    return;
  }
  const out = mkdtempSync(join(tmpdir(), 'cvc-ew-wasm-'));
  try {
    const r = spawnSync('bash', [join(root, 'scripts/build-wasm.sh'), out], { cwd: root, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    for (const f of ['cvc-elementwise.wasm', 'cvc-elementwise-shared.wasm'])
      assert.ok(
        Buffer.from(readFileSync(join(out, f))).equals(readFileSync(join(root, 'packages/tfjs-runtime/wasm', f))),
        `packages/tfjs-runtime/wasm/${f} is out of date with csrc/elementwise.c: run scripts/build-wasm.sh and commit the result`,
      );
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
