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
    const b = tf.cast(tf.tensor([0, 1.5, -2, 0.25, Number.NaN, -0]), 'bool');
    assert.deepEqual(Array.from(b.dataSync()), [0, 1, 1, 1, 1, 0], 'a cast to bool is x != 0');
    b.dispose();
  });
});

test('Sum and Mean over leading axes match the cpu backend (keepDims, odd sizes, every kernel path)', () => {
  const shapes: [number[], number[]][] = [
    [[5, 7, 3], [0]],
    [
      [5, 7, 3],
      [0, 1],
    ],
    [
      [4, 6, 6, 32],
      [0, 1, 2],
    ],
    [
      [3, 5, 5, 16],
      [0, 1, 2],
    ],
    [
      [2, 3, 4, 21],
      [0, 1, 2],
    ],
    [[9, 13], [0]],
    [
      [9, 13],
      [0, 1],
    ],
    [[17], [0]],
    [[3, 4, 5], [1]], // not leading: tfjs-backend-wasm's own kernel
    [
      [3, 4, 5],
      [0, 2],
    ],
  ];
  for (const impl of ['relaxed-simd', 'xnnpack'] as const) {
    selectWasmConv(impl); // xnnpack: the JavaScript loop instead of cvc's SIMD kernel
    for (const [shape, axes] of shapes) {
      const v = rand(shape.reduce((a, b) => a * b, 1));
      for (const keepDims of [false, true]) {
        for (const op of ['sum', 'mean'] as const) {
          const run = (b: string) =>
            on(b, () =>
              tf.tidy(() => {
                const r = tf[op](tf.tensor(v, shape), axes, keepDims);
                return { shape: r.shape, v: r.dataSync() as Float32Array };
              }),
            );
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
  for (let c = 0; c < 4; c++)
    assert.ok(Math.abs((got[c] as number) - (exact[c] as number)) / (exact[c] as number) < 1e-6, `column ${c}: ${got[c]} vs ${exact[c]}`);
});

test('Tile matches the cpu backend for broadcasts, general repetitions, int32 and bool', () => {
  const cases: [number[], number[]][] = [
    [
      [1, 1, 1, 5],
      [3, 4, 2, 1],
    ],
    [
      [32, 1],
      [1, 300],
    ],
    [
      [1, 7],
      [9, 1],
    ],
    [
      [1, 1, 3],
      [2, 5, 1],
    ],
    [
      [2, 3],
      [1, 1],
    ],
    [
      [2, 3],
      [2, 2],
    ],
    [
      [1, 2, 3],
      [2, 1, 2],
    ],
    [
      [3, 1, 2],
      [2, 4, 3],
    ],
    [[5], [4]],
    [
      [2, 2, 2, 2],
      [1, 3, 1, 2],
    ],
    [
      [3, 0],
      [2, 2],
    ],
  ];
  const before = smallKernelCounts.blockTile;
  for (const [shape, reps] of cases) {
    const v = rand(shape.reduce((a, b) => a * b, 1));
    for (const dtype of ['float32', 'int32', 'bool'] as const) {
      const run = (b: string) =>
        on(b, () =>
          tf.tidy(() => {
            const t = tf.tile(tf.cast(tf.mul(tf.tensor(v, shape), 100), dtype), reps);
            return { shape: t.shape, v: Array.from(t.dataSync()) };
          }),
        );
      assert.deepEqual(run('wasm'), run('cpu'), `tile ${dtype} ${shape.join('x')} by ${reps.join(',')}`);
    }
  }
  assert.equal(smallKernelCounts.blockTile, before + 3 * cases.length);
});

test('the Sum and Mean gradients match the cpu backend and build no tensor of ones', async () => {
  for (const [shape, axes] of [
    [
      [4, 5, 5, 6],
      [0, 1, 2],
    ],
    [[3, 4, 5], [1]],
    [
      [6, 2],
      [0, 1],
    ],
    [[7], [0]],
  ] as [number[], number[]][]) {
    const v = rand(shape.reduce((a, b) => a * b, 1));
    const run = (b: string) =>
      on(b, () =>
        tf.tidy(() => {
          const weights = tf
            .range(1, 1 + shape.filter((_, i) => !axes.includes(i)).reduce((a, b) => a * b, 1))
            .reshape(shape.map((d, i) => (axes.includes(i) ? 1 : d)));
          const gm = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(tf.mean(x, axes, true), weights)))(tf.tensor(v, shape));
          const gs = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(tf.sum(x, axes, true), weights)))(tf.tensor(v, shape));
          return Float32Array.from([...gm.dataSync(), ...gs.dataSync()]);
        }),
      );
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

test('FusedBatchNorm with per-channel parameters matches the cpu backend (odd channel counts, no scale or offset)', () => {
  const before = smallKernelCounts.batchNorm;
  for (const c of [1, 3, 4, 5, 8, 32]) {
    const shape = [3, 5, 4, c];
    const xv = rand(3 * 5 * 4 * c);
    const m = rand(c);
    const v = Float32Array.from(rand(c), (t) => Math.abs(t) + 0.1);
    const off = rand(c);
    const sc = rand(c);
    for (const [withOffset, withScale] of [
      [true, true],
      [false, true],
      [true, false],
      [false, false],
    ]) {
      const run = (b: string) =>
        on(b, () =>
          tf.tidy(
            () =>
              tf
                .batchNorm(
                  tf.tensor(xv, shape),
                  tf.tensor1d(m),
                  tf.tensor1d(v),
                  withOffset ? tf.tensor1d(off) : undefined,
                  withScale ? tf.tensor1d(sc) : undefined,
                  1e-3,
                )
                .dataSync() as Float32Array,
          ),
        );
      assert.ok(relErr(run('wasm'), run('cpu')) < 1e-5, `batchNorm c=${c} offset=${withOffset} scale=${withScale}`);
    }
  }
  assert.equal(smallKernelCounts.batchNorm - before, 6 * 4);
});

/** The gradient of nearest-neighbour resizing by its definition: dy summed into the source pixel floor(d * in / out). */
function resizeGradReference(shape: number[], size: [number, number], dy: Float32Array): Float32Array {
  const [n, ih, iw, c] = shape as [number, number, number, number];
  const [oh, ow] = size;
  const dx = new Float64Array(n * ih * iw * c);
  for (let b = 0; b < n; b++)
    for (let y = 0; y < oh; y++)
      for (let x = 0; x < ow; x++)
        for (let k = 0; k < c; k++) {
          const sy = Math.min(ih - 1, Math.floor((y * ih) / oh));
          const sx = Math.min(iw - 1, Math.floor((x * iw) / ow));
          const at = ((b * ih + sy) * iw + sx) * c + k;
          dx[at] = (dx[at] ?? 0) + (dy[((b * oh + y) * ow + x) * c + k] ?? 0);
        }
  return Float32Array.from(dx);
}

test('ResizeNearestNeighborGrad for whole up-sampling factors is exact (batches, odd channels); other resizes match the cpu backend', () => {
  const before = smallKernelCounts.upsampleGrad;
  const grad = (b: string, shape: number[], size: [number, number], gv: Float32Array, alignCorners = false, halfPixel = false) =>
    on(b, () =>
      tf.tidy(() => {
        const g = tf.tensor(gv, [shape[0] as number, size[0], size[1], shape[3] as number]);
        return tf
          .grad((x: tf.Tensor) => tf.sum(tf.mul(tf.image.resizeNearestNeighbor(x as tf.Tensor4D, size, alignCorners, halfPixel), g)))(tf.zeros(shape))
          .dataSync() as Float32Array;
      }),
    );
  const whole: [number[], [number, number], boolean][] = [
    [[2, 4, 4, 16], [8, 8], false],
    [[3, 3, 5, 3], [6, 10], false],
    [[2, 3, 2, 5], [9, 6], true],
    [[1, 4, 4, 4], [8, 12], false],
  ];
  for (const [shape, size, halfPixel] of whole) {
    const gv = rand((shape[0] as number) * size[0] * size[1] * (shape[3] as number));
    const e = relErr(grad('wasm', shape, size, gv, false, halfPixel), resizeGradReference(shape, size, gv));
    assert.ok(e < 1e-6, `resize grad ${shape.join('x')} to ${size.join('x')}: rel err ${e}`);
  }
  assert.equal(smallKernelCounts.upsampleGrad - before, whole.length);
  // Not whole factors, or alignCorners: tfjs-backend-wasm's own kernel. (Batch 1: tfjs-backend-cpu's
  // kernel misplaces every batch after the first, so it is no reference there.)
  for (const [size, alignCorners] of [
    [[6, 6], false],
    [[8, 8], true],
  ] as [[number, number], boolean][]) {
    const gv = rand(size[0] * size[1] * 4);
    assert.ok(relErr(grad('wasm', [1, 4, 4, 4], size, gv, alignCorners), grad('cpu', [1, 4, 4, 4], size, gv, alignCorners)) < 1e-5);
  }
  assert.equal(smallKernelCounts.upsampleGrad - before, whole.length);
});

test('SplitV and Concat along the last axis are row copies that match the cpu backend; other axes and dtypes keep the backend kernels', () => {
  const shapes: number[][] = [
    [2, 3, 5, 13],
    [7, 9],
    [1, 1, 2, 6],
  ];
  for (const shape of shapes) {
    const last = shape[shape.length - 1] as number;
    const sizes = last === 13 ? [4, 1, 8] : last === 9 ? [3, 3, 3] : [5, 1];
    const data = rand(shape.reduce((a, b) => a * b, 1));
    const ref = on('cpu', () => {
      const x = tf.tensor(data, shape);
      const parts = tf.split(x, sizes, -1);
      const joined = tf.concat([parts[2] ?? x, x, parts[0] as tf.Tensor], -1);
      const out = {
        parts: parts.map((p) => ({ shape: p.shape, v: Array.from(p.dataSync()) })),
        joined: { shape: joined.shape, v: Array.from(joined.dataSync()) },
      };
      tf.dispose([x, joined, ...parts]);
      return out;
    });
    on('wasm', () => {
      const before = { ...smallKernelCounts };
      const x = tf.tensor(data, shape);
      const parts = tf.split(x, sizes, -1);
      const joined = tf.concat([parts[2] ?? x, x, parts[0] as tf.Tensor], -1);
      assert.equal(smallKernelCounts.splitLast, before.splitLast + 1, `split ${shape.join('x')}`);
      assert.equal(smallKernelCounts.concatLast, before.concatLast + 1, `concat ${shape.join('x')}`);
      parts.forEach((p, i) => {
        assert.deepEqual(p.shape, ref.parts[i]?.shape);
        assert.deepEqual(Array.from(p.dataSync()), ref.parts[i]?.v, `part ${i} of ${shape.join('x')}`);
      });
      assert.deepEqual(joined.shape, ref.joined.shape);
      assert.deepEqual(Array.from(joined.dataSync()), ref.joined.v);
      tf.dispose([x, joined, ...parts]);
    });
  }
  on('wasm', () => {
    const before = { ...smallKernelCounts };
    const x = tf.tensor(rand(24), [2, 3, 4]);
    const [a, b] = tf.split(x, 2, 0);
    const c = tf.concat([a as tf.Tensor, b as tf.Tensor], 0);
    const i = tf.concat([tf.tensor([1, 2], [1, 2], 'int32'), tf.tensor([3], [1, 1], 'int32')], -1);
    assert.deepEqual(Array.from(c.dataSync()), Array.from(x.dataSync()), 'a split and a concat along the first axis round-trip');
    assert.deepEqual(Array.from(i.dataSync()), [1, 2, 3]);
    assert.equal(smallKernelCounts.splitLast, before.splitLast, 'not the last axis: the backend kernel');
    assert.equal(smallKernelCounts.concatLast, before.concatLast, 'first axis and int32: the backend kernel');
    tf.dispose([x, c, i, ...[a, b].filter((t): t is tf.Tensor => t !== undefined)]);
  });
});
