import { readFileSync } from 'node:fs';

/** The kernels exported by csrc/kmeans.c (pointers are byte offsets into the module's memory). */
interface KMeansExports {
  kmeans_dist2(a: number, b: number, d: number): number;
  kpp_first(x: number, n: number, d: number, c: number, closest: number, labels: number, lower: number): number;
  kpp_sample(closest: number, n: number, r: number): number;
  kpp_trials(
    x: number,
    n: number,
    d: number,
    closest: number,
    labels: number,
    centers: number,
    m: number,
    cands: number,
    t: number,
    pots: number,
    q: number,
    tv: number,
  ): void;
  kpp_update(n: number, d: number, closest: number, labels: number, lower: number, centers: number, m: number, v: number, q: number): number;
  lloyd_scratch_values(n: number, d: number, k: number): number;
  lloyd(
    x: number,
    n: number,
    d: number,
    centers: number,
    k: number,
    maxIter: number,
    tolAbs: number,
    labels: number,
    upper: number,
    lower: number,
    ws: number,
  ): number;
  inertia(x: number, n: number, d: number, centers: number, labels: number): number;
}

/** The few WebAssembly JS API members used here (the project's TypeScript libs do not declare them). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: object };
  Memory: new (desc: { initial: number }) => { readonly buffer: ArrayBuffer };
}
const WebAssembly = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

const PAGE = 65536;
/** The buffers start past the first page, where the module's (unused) C stack would live. */
const BASE = PAGE;

/** The compiled module file, beside dist/ in wasm/ (built by scripts/build-wasm.sh from csrc/kmeans.c). */
export function kmeansModuleBytes(): Uint8Array {
  return readFileSync(new URL('../wasm/cvc-kmeans.wasm', import.meta.url));
}

let compiled: object | undefined;

/**
 * One k-means problem's buffers in a fresh wasm memory, with the kernels
 * bound to it. The Float64Array/Int32Array views alias the memory.
 */
export interface KMeansWorkspace {
  readonly k: KMeansExports;
  /** n x d points. */
  readonly x: Float64Array;
  readonly xPtr: number;
  /** Squared distance of each point to its nearest chosen seed (k-means++); Lloyd's upper bounds. */
  readonly closest: Float64Array;
  readonly closestPtr: number;
  /** A lower bound on each point's distance to the nearest center other than its own. */
  readonly lowerPtr: number;
  /** Scratch for the k-means++ kernels. */
  readonly qPtr: number;
  /** trials x n: each candidate's distances, from kpp_trials to kpp_update. */
  readonly tvPtr: number;
  /** k x d centers of the run in progress. */
  readonly centers: Float64Array;
  readonly centersPtr: number;
  /** trials x d candidate seeds, and the potential each would leave. */
  readonly cands: Float64Array;
  readonly candsPtr: number;
  readonly pots: Float64Array;
  readonly potsPtr: number;
  /** The nearest seed / center of each point. */
  readonly labels: Int32Array;
  readonly labelsPtr: number;
  /** Lloyd's scratch. */
  readonly wsPtr: number;
}

/** Lays out the buffers for n points of d values, k centers and `trials` k-means++ candidates. */
export function kmeansWorkspace(n: number, d: number, k: number, trials: number): KMeansWorkspace {
  compiled ??= new WebAssembly.Module(kmeansModuleBytes());
  const ws = 2 * k * d + 3 * k + k * k + (d + 1) * (k + 1);
  let at = BASE;
  const take = (bytes: number): number => {
    const p = at;
    at += Math.ceil(bytes / 16) * 16;
    return p;
  };
  const xPtr = take(n * d * 8);
  const closestPtr = take(n * 8);
  const lowerPtr = take(n * 8);
  const qPtr = take(Math.max(trials * k + (d + 1) * (trials + 1), 2 * k) * 8);
  const centersPtr = take(k * d * 8);
  const candsPtr = take(Math.max(trials, 1) * d * 8);
  const potsPtr = take(Math.max(trials, 1) * 8);
  const labelsPtr = take(n * 4);
  const tvPtr = take(Math.max(trials, 1) * n * 8);
  const wsPtr = take(ws * 8);
  const memory = new WebAssembly.Memory({ initial: Math.ceil(at / PAGE) });
  const exports = new WebAssembly.Instance(compiled, { env: { memory } }).exports as KMeansExports;
  if (exports.lloyd_scratch_values(n, d, k) !== ws) throw new Error('cvc-kmeans.wasm does not match src/kmeans-wasm.ts: rebuild it with scripts/build-wasm.sh');
  const buf = memory.buffer;
  return {
    k: exports,
    x: new Float64Array(buf, xPtr, n * d),
    xPtr,
    closest: new Float64Array(buf, closestPtr, n),
    closestPtr,
    lowerPtr,
    qPtr,
    centers: new Float64Array(buf, centersPtr, k * d),
    centersPtr,
    cands: new Float64Array(buf, candsPtr, trials * d),
    candsPtr,
    pots: new Float64Array(buf, potsPtr, trials),
    potsPtr,
    labels: new Int32Array(buf, labelsPtr, n),
    labelsPtr,
    tvPtr,
    wsPtr,
  };
}
