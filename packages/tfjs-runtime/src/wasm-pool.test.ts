// cvc's kernels on the thread pool (2 threads): every split kernel equals the
// single-threaded kernel on the same memory, the ops equal the cpu backend,
// a failing kernel is a typed error, and nothing leaks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRng } from '@cvc/core';
import { tf, initBackend, convPathCounts, kernelPathCounts, elementwiseCounts } from './index.js';
import { relErr } from './test-utils.js';
import { kernelsFor, type ConvBackend } from './wasm-conv.js';
import { bindKernels, type ConvExports, type Kernels } from './wasm-kernel-set.js';
import { RuntimeError } from './errors.js';

await initBackend('cpu');
const info = await initBackend('wasm', undefined, { wasmThreads: 2 });
const backend = tf.backend() as unknown as ConvBackend & { wasm: { wasmMemory: { buffer: SharedArrayBuffer } } };
const rng = createRng(4242);
const rand = (n: number): Float32Array => Float32Array.from({ length: n }, () => rng.next() * 2 - 1);

function useBackend(name: string): void {
  void tf.setBackend(name);
  assert.equal(tf.getBackend(), name);
}

function pooled(): Kernels {
  const k = kernelsFor(backend);
  assert.ok(k?.pool !== undefined, 'the kernels run on a pool');
  return k;
}

test("with 2 threads the backend trains on cvc's kernels, run by a pool of 2 threads", () => {
  assert.equal(info.threads, 2);
  assert.equal(info.conv, 'relaxed-simd');
  const k = pooled();
  assert.equal(k.pool?.threads, 2);
  assert.equal(k.chunks, 8);
  // XNNPACK, left with the few ops cvc does not cover, keeps one thread (its pool busy-waits).
  assert.equal((backend.wasm as unknown as { tfjs: { getThreadsCount(): number } }).tfjs.getThreadsCount(), 1);
});

test("with 2 threads (a shared memory) cvc's elementwise kernels still run, from their shared-memory build", () => {
  const before = { ...elementwiseCounts };
  const a = rand(1000);
  const b = rand(1000);
  const x = tf.tensor(a, [10, 100]);
  const y = tf.tensor(b, [10, 100]);
  const sum = tf.add(x, y);
  const prod = tf.mul(x, y);
  const got = [sum.dataSync(), prod.dataSync()];
  assert.equal(elementwiseCounts.same, before.same + 2, "Add and Multiply ran on cvc's kernels");
  assert.equal(elementwiseCounts.fallback, before.fallback);
  for (let i = 0; i < 1000; i++) {
    assert.equal(got[0]?.[i], Math.fround((a[i] as number) + (b[i] as number)));
    assert.equal(got[1]?.[i], Math.fround((a[i] as number) * (b[i] as number)));
  }
  tf.dispose([x, y, sum, prod]);
});

/** Buffers on the wasm heap, freed together. */
class Heap {
  private readonly ptrs: number[] = [];
  alloc(n: number, values?: Float32Array): number {
    const p = backend.wasm._malloc(Math.max(1, n) * 4);
    this.ptrs.push(p);
    const view = new Float32Array(backend.wasm.wasmMemory.buffer, p, n);
    if (values) view.set(values.subarray(0, n));
    else view.fill(0);
    return p;
  }
  read(p: number, n: number): Float32Array {
    return new Float32Array(backend.wasm.wasmMemory.buffer, p, n).slice();
  }
  free(): void {
    for (const p of this.ptrs) backend.wasm._free(p);
  }
}

/** Runs `fn` with the pooled kernel set and with the single-threaded one (same module, same memory), and returns both outputs. */
function both(outLen: number, fn: (k: Kernels, h: Heap, out: number) => void): [Float32Array, Float32Array] {
  const par = pooled();
  const serial = bindKernels(par.pool?.exports as ConvExports, backend.wasm.wasmMemory);
  assert.equal(serial.chunks, 1);
  const h = new Heap();
  try {
    const results = [par, serial].map((k) => {
      const out = h.alloc(outLen);
      fn(k, h, out);
      return h.read(out, outLen);
    });
    return [results[0] as Float32Array, results[1] as Float32Array];
  } finally {
    h.free();
  }
}

function assertSame(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length);
  const i = a.findIndex((v, j) => !Object.is(v, b[j]));
  assert.equal(i, -1, `${what}: element ${i} differs (${a[i]} threaded, ${b[i]} single-threaded)`);
  assert.ok(
    b.some((v) => v !== 0),
    `${what}: the output is not all zeros`,
  );
}

test('every split kernel computes exactly what the single-threaded kernel computes', () => {
  const jobs = pooled().pool?.stats.pooledJobs ?? 0;
  // Forward: 4-channel blocks (Co 12: a block of 8 and one of 4), the narrow kernel, odd rows, stride 2.
  for (const [n, hp, wp, ci, kh, kw, co, s] of [
    [3, 17, 15, 5, 3, 3, 12, 1],
    [2, 30, 30, 8, 7, 7, 2, 1],
    [1, 65, 65, 3, 3, 3, 16, 2],
  ] as const) {
    const oh = Math.floor((hp - kh) / s) + 1;
    const ow = Math.floor((wp - kw) / s) + 1;
    const xv = rand(n * hp * wp * ci);
    const wv = rand(kh * kw * ci * co);
    const [a, b] = both(n * oh * ow * co, (k, h, y) => {
      const x = h.alloc(xv.length, xv);
      const w = h.alloc(wv.length, wv);
      (co % 4 === 0 ? k.conv2d : k.conv2d_narrow)(x, n, hp, wp, ci, w, kh, kw, co, s, s, y, oh, ow);
    });
    assertSame(a, b, `conv2d ${kh}x${kw} ${ci}->${co} stride ${s}`);
  }
  // The 1x1 matmul geometry (one row of m pixels), split by blocks of 4 pixels.
  {
    const [m, kk, nn] = [37, 300, 24];
    const av = rand(m * kk);
    const bv = rand(kk * nn);
    const [a, b] = both(m * nn, (k, h, y) => k.conv2d(h.alloc(av.length, av), 1, 1, m, kk, h.alloc(bv.length, bv), 1, 1, nn, 1, 1, y, 1, m));
    assertSame(a, b, 'matmul');
  }
  // Filter gradients: 8- and 4-channel blocks with a partial tap block (J = 5*3 = 15), and the narrow kernel with a 32-tap block and a tail.
  for (const [narrow, n, hp, wp, ci, kh, kw, co] of [
    [false, 3, 20, 18, 3, 5, 5, 12],
    [false, 2, 34, 34, 1, 7, 7, 32],
    [true, 2, 30, 30, 13, 3, 3, 3],
  ] as const) {
    const oh = hp - kh + 1;
    const ow = wp - kw + 1;
    const xv = rand(n * hp * wp * ci);
    const dv = rand(n * oh * ow * co);
    const group = Math.max(1, Math.min(64, Math.ceil(128 / ow)));
    const [a, b] = both(kh * kw * ci * co, (k, h, dw) => {
      const rows = h.alloc(2 * group * k.chunks);
      (narrow ? k.conv2d_filter_narrow : k.conv2d_filter)(
        h.alloc(xv.length, xv),
        n,
        hp,
        wp,
        ci,
        h.alloc(dv.length, dv),
        oh,
        ow,
        co,
        1,
        1,
        dw,
        kh,
        kw,
        rows,
        group,
      );
    });
    assertSame(a, b, `filter gradient ${kh}x${kw} ${ci}->${co}${narrow ? ' (narrow)' : ''}`);
  }
  // The elementwise kernels, split by rows or images.
  const [n, hh, ww, c] = [4, 32, 32, 12];
  const xv = rand(n * hh * ww * c);
  const pv = rand(3 * c);
  {
    const [a, b] = both(n * hh * ww * c, (k, h, y) => {
      const p = h.alloc(3 * c, pv);
      k.batch_norm(h.alloc(xv.length, xv), n * hh * ww, c, p, p + 4 * c, p + 8 * c, y);
    });
    assertSame(a, b, 'batch_norm');
  }
  {
    const [a, b] = both(n * (hh / 2) * (ww / 2) * c, (k, h, dx) => k.upsample_nearest_grad(h.alloc(xv.length, xv), n, hh, ww, c, 2, 2, dx));
    assertSame(a, b, 'upsample_nearest_grad');
  }
  {
    const dv = rand(n * (hh / 2) * (ww / 2) * c);
    const [a, b] = both(xv.length, (k, h, dx) =>
      k.max_pool_grad(h.alloc(xv.length, xv), n, hh, ww, c, h.alloc(dv.length, dv), hh / 2, ww / 2, 2, 2, 2, 2, 0, 0, dx),
    );
    assertSame(a, b, 'max_pool_grad');
  }
  {
    const [a, b] = both(n * (hh + 2) * (ww + 3) * c, (k, h, xp) => k.pad_nhwc(h.alloc(xv.length, xv), n, hh, ww, c, xp, hh + 2, ww + 3, 1, 2));
    assertSame(a, b, 'pad_nhwc');
  }
  {
    // 4096 rows in 64-row blocks, summed per chunk in float64 and added up: float32 results within rounding of the one-pass sum.
    const [a, b] = both(c, (k, h, out) => {
      const acc = backend.wasm._malloc(8 * c * k.chunks);
      new Float64Array(backend.wasm.wasmMemory.buffer, acc, c * k.chunks).fill(0);
      k.sum_rows(h.alloc(xv.length, xv), n * hh * ww, c, out, acc, 0.5);
      backend.wasm._free(acc);
    });
    assert.ok(relErr(a, b) < 1e-6, `sum_rows relative error ${relErr(a, b)}`);
  }
  const after = pooled().pool?.stats.pooledJobs ?? 0;
  assert.ok(after - jobs >= 12, `the pool ran the threaded calls (${after - jobs} pooled jobs)`);
});

/** Loss and gradients of a small autoencoder-like network (3x3, strided 5x5, 1x1 and 7x7 convolutions, pooling, up-sampling, batch-norm, a dense layer) on one backend. */
function networkGrads(name: string, xv: Float32Array, shape: [number, number, number, number], weights: Float32Array[]): Float32Array[] {
  useBackend(name);
  return tf.tidy(() => {
    const x = tf.tensor4d(xv, shape);
    const [n, h, w, c] = shape;
    const ws = [
      tf.tensor4d(weights[0] as Float32Array, [3, 3, c, 8]),
      tf.tensor4d(weights[1] as Float32Array, [5, 5, 8, 16]),
      tf.tensor4d(weights[2] as Float32Array, [1, 1, 16, 6]),
      tf.tensor2d(weights[3] as Float32Array, [(h / 4) * (w / 4) * 6, 10]),
      tf.tensor2d(weights[4] as Float32Array, [10, (h / 4) * (w / 4) * 6]),
      tf.tensor4d(weights[5] as Float32Array, [7, 7, 6, c]),
    ];
    const f = (...v: tf.Tensor[]): tf.Scalar => {
      const [w0, w1, w2, d0, d1, w3] = v as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D, tf.Tensor2D, tf.Tensor2D, tf.Tensor4D];
      let a = tf.relu(tf.conv2d(x, w0, 1, 'same'));
      a = tf.relu(tf.conv2d(a, w1, 2, 'same'));
      const m = tf.moments(a, [0, 1, 2]);
      a = tf.batchNorm(a, m.mean, m.variance, tf.fill([16], 0.1), tf.fill([16], 1.5)) as tf.Tensor4D;
      a = tf.maxPool(a, 2, 2, 'valid');
      a = tf.conv2d(a, w2, 1, 'valid');
      const code = tf.matMul(tf.reshape(a, [n, -1]), d0);
      const small = tf.reshape<tf.Rank.R4>(tf.relu(tf.matMul(code, d1)), [n, h / 4, w / 4, 6]);
      // The cpu backend's ResizeNearestNeighborGrad is wrong for batches of more than one image (tfjs 4.22), so the
      // reference up-samples by the equivalent tile; the wasm backend runs the resize (and cvc's gradient kernel).
      const b =
        name === 'cpu'
          ? tf.reshape<tf.Rank.R4>(tf.tile(tf.reshape(tf.tile(tf.reshape(small, [-1, 1, 6]), [1, 4, 1]), [-1, 1, w * 6]), [1, 4, 1]), [n, h, w, 6])
          : tf.image.resizeNearestNeighbor(small, [h, w]);
      const y = tf.conv2d(b, w3, 1, 'same');
      return tf.mean(tf.square(tf.sub(y, x)));
    };
    const g = tf.grads(f)(ws);
    return [f(...ws), ...g].map((t) => t.dataSync() as Float32Array);
  });
}

for (const shape of [
  [4, 28, 28, 1],
  [2, 64, 64, 3],
] as [number, number, number, number][]) {
  test(`a ${shape.slice(1).join('x')} network's loss and gradients on 2 threads equal the cpu backend's; the strided input gradient runs on cvc's kernels`, () => {
    const [, h, w, c] = shape;
    const xv = rand(shape.reduce((a, b) => a * b, 1));
    const cells = (h / 4) * (w / 4) * 6;
    const weights = [9 * c * 8, 25 * 8 * 16, 16 * 6, cells * 10, 10 * cells, 49 * 6 * c].map((n) => rand(n).map((v) => v * 0.3));
    const before = { ...convPathCounts, ...kernelPathCounts, jobs: pooled().pool?.stats.pooledJobs ?? 0 };
    const ours = networkGrads('wasm', xv, shape, weights);
    const after = { ...convPathCounts, ...kernelPathCounts, jobs: pooled().pool?.stats.pooledJobs ?? 0 };
    const ref = networkGrads('cpu', xv, shape, weights);
    for (const [i, r] of ref.entries()) {
      const e = relErr(ours[i] as Float32Array, r);
      assert.ok(e < 1e-4, `${i === 0 ? 'loss' : `gradient ${i}`}: relative error ${e}`);
    }
    assert.ok(after.forward > before.forward && after.filter > before.filter && after.matMul > before.matMul, "cvc's kernels ran");
    assert.ok(after.jobs > before.jobs, 'on the pool');
    assert.equal(after.xnnpack, before.xnnpack, 'no convolution went to XNNPACK');
    assert.ok(after.inputStrided > before.inputStrided, "the strided convolution's input gradient ran on cvc's kernels");
  });
}

test('the worker thread takes chunks of the jobs', () => {
  const k = pooled();
  const pool = k.pool;
  assert.ok(pool !== undefined);
  const h = new Heap();
  try {
    const x = h.alloc(8 * 30 * 30 * 8, rand(8 * 30 * 30 * 8));
    const w = h.alloc(9 * 8 * 16, rand(9 * 8 * 16));
    const y = h.alloc(8 * 28 * 28 * 16);
    const before = pool.workerChunks;
    // On a loaded machine the main thread may take every chunk of a job before the worker wakes; over many jobs it does not.
    for (let i = 0; i < 200 && pool.workerChunks === before; i++) k.conv2d(x, 8, 30, 30, 8, w, 3, 3, 16, 1, 1, y, 28, 28);
    assert.ok(pool.workerChunks > before, 'the worker ran chunks');
  } finally {
    h.free();
  }
});

test('a kernel that fails on the pool is a RuntimeError WASM_THREADS naming it, and the pool keeps working', () => {
  const k = pooled();
  const h = new Heap();
  try {
    // Large enough to be split over the pool (2x28x28 pixels, 3x3x8 -> 8 channels).
    const x = h.alloc(2 * 30 * 30 * 8, rand(2 * 30 * 30 * 8));
    const w = h.alloc(9 * 8 * 8, rand(9 * 8 * 8));
    const outside = backend.wasm.wasmMemory.buffer.byteLength + 4096;
    assert.throws(
      () => k.conv2d(x, 2, 30, 30, 8, w, 3, 3, 8, 1, 1, outside, 28, 28),
      (err: unknown) => err instanceof RuntimeError && err.code === 'WASM_THREADS' && /conv2d: RuntimeError: memory access out of bounds/.test(err.message),
    );
    assert.ok(k.pool?.healthy);
    const [a, b] = both(2 * 28 * 28 * 8, (kk, _h, y) => kk.conv2d(x, 2, 30, 30, 8, w, 3, 3, 8, 1, 1, y, 28, 28));
    assertSame(a, b, 'conv2d after a failure');
  } finally {
    h.free();
  }
});

test('training steps on the pool leak neither tensors nor wasm heap', () => {
  useBackend('wasm');
  const wasm = backend.wasm as unknown as { _malloc: (n: number) => number; _free: (p: number) => void };
  const live = new Set<number>();
  const malloc = wasm._malloc;
  const free = wasm._free;
  wasm._malloc = (n: number) => {
    const p = malloc(n);
    live.add(p);
    return p;
  };
  wasm._free = (p: number) => {
    live.delete(p);
    free(p);
  };
  try {
    const vars = [
      tf.variable(tf.tensor4d(rand(9 * 8), [3, 3, 1, 8])),
      tf.variable(tf.tensor4d(rand(25 * 8 * 8), [5, 5, 8, 8])),
      tf.variable(tf.tensor4d(rand(8), [1, 1, 8, 1])),
    ];
    const x = tf.tensor4d(rand(8 * 28 * 28), [8, 28, 28, 1]);
    const opt = tf.train.adam(1e-3);
    const step = (): void =>
      tf.tidy(() => {
        opt.minimize(
          () => {
            let a = tf.relu(tf.conv2d(x, vars[0] as tf.Variable<tf.Rank.R4>, 1, 'same'));
            a = tf.maxPool(tf.relu(tf.conv2d(a, vars[1] as tf.Variable<tf.Rank.R4>, 1, 'same')), 2, 2, 'valid');
            a = tf.image.resizeNearestNeighbor(a, [28, 28]);
            return tf.mean(tf.square(tf.sub(tf.conv2d(a, vars[2] as tf.Variable<tf.Rank.R4>, 1, 'same'), x)));
          },
          false,
          vars,
        );
      });
    step();
    step();
    const tensors = tf.memory().numTensors;
    const heap = live.size;
    for (let i = 0; i < 4; i++) step();
    assert.equal(tf.memory().numTensors, tensors, 'numTensors is stable');
    assert.equal(live.size, heap, 'live wasm allocations are stable');
    opt.dispose();
    for (const v of vars) v.dispose();
    x.dispose();
  } finally {
    wasm._malloc = malloc;
    wasm._free = free;
  }
});
