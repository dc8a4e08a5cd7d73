import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRng } from '@cvc/core';
import { tf, initBackend, smallKernelCounts, selectWasmConv } from './index.js';
import { relErr } from './test-utils.js';

await initBackend('cpu');
await initBackend('wasm');
const rng = createRng(77);
const rand = (n: number): Float32Array => Float32Array.from({ length: n }, () => rng.next() * 2 - 1);

function on<T>(backend: string, fn: () => T): T {
  void tf.setBackend(backend);
  assert.equal(tf.getBackend(), backend);
  return fn();
}
const numDataIds = (): number => (tf.backend() as unknown as { numDataIds(): number }).numDataIds();

test('Identity and same-dtype Cast share the buffer; the copy outlives the original', () => {
  on('wasm', () => {
    const before = { ...smallKernelCounts };
    const x = tf.tensor([1, 2, 3, 4], [2, 2]);
    const ids = numDataIds();
    const y = tf.clone(x);
    const z = tf.cast(x, 'float32');
    assert.equal(numDataIds(), ids, 'no new buffer');
    assert.equal(smallKernelCounts.sharedIdentity, before.sharedIdentity + 1);
    assert.equal(smallKernelCounts.sharedCast, before.sharedCast + 1);
    x.dispose();
    assert.deepEqual(Array.from(y.dataSync()), [1, 2, 3, 4]);
    y.dispose();
    assert.deepEqual(Array.from(z.dataSync()), [1, 2, 3, 4]);
    z.dispose();
    assert.equal(numDataIds(), ids - 1, 'the buffer is freed with its last tensor');
    // A real conversion still converts.
    const i = tf.cast(tf.tensor([1.7, -2.2, 3.5]), 'int32');
    assert.equal(i.dtype, 'int32');
    assert.deepEqual(Array.from(i.dataSync()), [1, -2, 3]);
    i.dispose();
  });
});

test('Sum and Mean over leading axes match the cpu backend (keepDims, odd sizes, every kernel path)', () => {
  const shapes: [number[], number[]][] = [
    [[5, 7, 3], [0]],
    [[5, 7, 3], [0, 1]],
    [[4, 6, 6, 32], [0, 1, 2]],
    [[3, 5, 5, 16], [0, 1, 2]],
    [[2, 3, 4, 21], [0, 1, 2]],
    [[9, 13], [0]],
    [[9, 13], [0, 1]],
    [[17], [0]],
    [[3, 4, 5], [1]], // not leading: tfjs-backend-wasm's own kernel
    [[3, 4, 5], [0, 2]],
  ];
  for (const impl of ['relaxed-simd', 'xnnpack'] as const) {
    selectWasmConv(impl); // xnnpack: the JavaScript loop instead of cvc's SIMD kernel
    for (const [shape, axes] of shapes) {
      const v = rand(shape.reduce((a, b) => a * b, 1));
      for (const keepDims of [false, true]) {
        for (const op of ['sum', 'mean'] as const) {
          const run = (b: string) => on(b, () => tf.tidy(() => {
            const r = tf[op](tf.tensor(v, shape), axes, keepDims);
            return { shape: r.shape, v: r.dataSync() as Float32Array };
          }));
          const got = run('wasm');
          const ref = run('cpu');
          assert.deepEqual(got.shape, ref.shape, `${op} ${shape.join('x')} axes ${axes.join(',')} keepDims=${keepDims}`);
          assert.ok(relErr(got.v, ref.v) < 1e-5, `${op} ${shape.join('x')} axes ${axes.join(',')} keepDims=${keepDims}: rel err ${relErr(got.v, ref.v)}`);
        }
      }
    }
  }
  selectWasmConv('auto');
  assert.ok(smallKernelCounts.leadingSum > 0 && smallKernelCounts.leadingMean > 0);
});

test('a long leading-axis sum keeps float32 accuracy (float64 past every 64 rows)', () => {
  const rows = 200_000;
  const v = Float32Array.from({ length: rows * 4 }, (_, i) => 0.1 + (i % 7) * 1e-3);
  const exact = [0, 1, 2, 3].map((c) => {
    let s = 0;
    for (let r = 0; r < rows; r++) s += v[r * 4 + c] as number;
    return s;
  });
  const got = on('wasm', () => tf.tidy(() => tf.sum(tf.tensor(v, [rows, 4]), 0).dataSync()));
  for (let c = 0; c < 4; c++) assert.ok(Math.abs((got[c] as number) - (exact[c] as number)) / (exact[c] as number) < 1e-6, `column ${c}: ${got[c]} vs ${exact[c]}`);
});

test('Tile repeating the whole input matches the cpu backend; other tilings too', () => {
  const cases: [number[], number[]][] = [
    [[1, 1, 1, 5], [3, 4, 2, 1]],
    [[1, 7], [9, 1]],
    [[1, 1, 3], [2, 5, 1]],
    [[2, 3], [1, 1]],
    [[1, 3], [3, 1]],
    [[2, 3], [2, 2]], // not a block repeat
    [[1, 2, 3], [2, 1, 2]],
  ];
  const before = smallKernelCounts.blockTile;
  for (const [shape, reps] of cases) {
    const v = rand(shape.reduce((a, b) => a * b, 1));
    const run = (b: string) => on(b, () => tf.tidy(() => Array.from(tf.tile(tf.tensor(v, shape), reps).dataSync())));
    assert.deepEqual(run('wasm'), run('cpu'), `tile ${shape.join('x')} by ${reps.join(',')}`);
  }
  assert.equal(smallKernelCounts.blockTile, before + 5);
});

test('the Sum and Mean gradients match the cpu backend and build no tensor of ones', async () => {
  for (const [shape, axes] of [[[4, 5, 5, 6], [0, 1, 2]], [[3, 4, 5], [1]], [[6, 2], [0, 1]], [[7], [0]]] as [number[], number[]][]) {
    const v = rand(shape.reduce((a, b) => a * b, 1));
    const run = (b: string) => on(b, () => tf.tidy(() => {
      const weights = tf.range(1, 1 + shape.filter((_, i) => !axes.includes(i)).reduce((a, b) => a * b, 1)).reshape(shape.map((d, i) => (axes.includes(i) ? 1 : d)));
      const gm = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(tf.mean(x, axes, true), weights)))(tf.tensor(v, shape));
      const gs = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(tf.sum(x, axes, true), weights)))(tf.tensor(v, shape));
      return Float32Array.from([...gm.dataSync(), ...gs.dataSync()]);
    }));
    assert.ok(relErr(run('wasm'), run('cpu')) < 1e-6, `mean and sum grads ${shape.join('x')} axes ${axes.join(',')}`);
  }
  // tfjs-core's gradient multiplies by ones(x.shape); this one divides dy and tiles it.
  void tf.setBackend('wasm');
  const x = tf.tensor(rand(2 * 3 * 3 * 4), [2, 3, 3, 4]);
  const info = await tf.profile(() => tf.grad((t: tf.Tensor) => tf.sum(tf.mean(t, [0, 1, 2])))(x));
  // (the profile lists the forward Mean and Sum, then their gradients: Reshape, RealDiv, Tile)
  const names = info.kernels.map((k) => k.name);
  assert.ok(names.includes('Tile'), `kernels: ${names.join(', ')}`);
  assert.ok(!names.includes('Multiply'), `kernels: ${names.join(', ')}`);
  x.dispose();
});
