import { readFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { backend_util, type Conv2DAttrs, type Conv2DBackpropFilterAttrs, type KernelFunc, type TensorInfo } from '@tensorflow/tfjs-core';
import { ConfigError } from '@cvc/core';
import { RuntimeError } from './errors.js';
import type { KernelArgs, WasmBackend } from './kernel-utils.js';
import { bindKernels, type ConvExports, type Kernels } from './wasm-kernel-set.js';
import { KernelPool } from './wasm-pool.js';

/**
 * Which convolution kernels the wasm backend trains with:
 * - `relaxed-simd`: cvc's kernels (csrc/conv.c) built with relaxed SIMD's
 *   fused multiply-add; on Node 20 this turns on V8's
 *   --experimental-wasm-relaxed-simd (standard from Node 22);
 * - `simd`: the same kernels with plain SIMD (a multiply and an add);
 * - `xnnpack`: tfjs-backend-wasm's own (XNNPACK) convolutions;
 * - `auto` (the default): relaxed-simd where it compiles, else simd, else xnnpack.
 * With more than one wasm thread cvc's kernels run on a pool of threads
 * over the backend's shared memory (startKernelPool, wasm-pool.ts).
 */
export type WasmConvChoice = 'auto' | 'relaxed-simd' | 'simd' | 'xnnpack';
export const WASM_CONV_CHOICES: readonly WasmConvChoice[] = ['auto', 'relaxed-simd', 'simd', 'xnnpack'];
export type WasmConvImpl = Exclude<WasmConvChoice, 'auto'>;

/** The parts of the emscripten module behind tfjs-backend-wasm that these kernels use. */
interface EmscriptenModule {
  asm?: { memory?: unknown };
  /** The memory of the threaded build (imported, so not among asm's exports). */
  wasmMemory?: unknown;
  _malloc(bytes: number): number;
  _free(ptr: number): void;
}

export interface ConvBackend extends WasmBackend {
  wasm: EmscriptenModule;
  dataIdMap: { get(dataId: unknown): { memoryOffset: number } | undefined };
}

/** The few WebAssembly JS API members used here (the project's TypeScript libs do not declare them). */
interface WasmMemory {
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
}
interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: object };
  Memory: abstract new (...args: never[]) => WasmMemory;
}
const WebAssembly = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

const FILES: Record<'relaxed-simd' | 'simd', string> = { 'relaxed-simd': 'cvc-conv-relaxed', simd: 'cvc-conv-simd' };

/**
 * The compiled module file for `impl`, beside dist/ in wasm/; `shared`: the
 * build that imports a shared memory (for the threaded backend's).
 */
export function convModuleBytes(impl: 'relaxed-simd' | 'simd', shared = false): Uint8Array {
  return readFileSync(new URL(`../wasm/${FILES[impl]}${shared ? '-shared' : ''}.wasm`, import.meta.url));
}

/** The selection; made on first use when selectWasmConv was not called. */
let active: { impl: WasmConvImpl; module?: object } | undefined;
/** Kernel sets by module, then by memory. */
const instances = new WeakMap<object, WeakMap<object, Kernels>>();
/** The thread pool started on a shared memory (startKernelPool). */
const pools = new WeakMap<object, KernelPool>();

/** Counts of the convolutions cvc's kernels ran and of those handed to XNNPACK; for tests. */
export const convPathCounts = { matMul: 0, forward: 0, forwardNarrow: 0, forwardPadded: 0, filter: 0, filterNarrow: 0, filterPadded: 0, xnnpack: 0 };

function relaxedAvailable(bytes: Uint8Array): boolean {
  if (WebAssembly.validate(bytes)) return true;
  // Node 20's V8 (11.3) has relaxed SIMD behind a flag; it is read when a module is compiled.
  setFlagsFromString('--experimental-wasm-relaxed-simd');
  return WebAssembly.validate(bytes);
}

/**
 * Chooses the convolution kernels (see WasmConvChoice) and returns the one in
 * use. `choice` defaults to $CVC_WASM_CONV, then `auto`.
 */
export function selectWasmConv(choice: string = process.env['CVC_WASM_CONV'] ?? 'auto'): WasmConvImpl {
  if (!(WASM_CONV_CHOICES as readonly string[]).includes(choice)) {
    throw new ConfigError('CVC_WASM_CONV', `unknown convolution kernels '${choice}' (choose one of ${WASM_CONV_CHOICES.join(', ')})`);
  }
  if (choice === 'xnnpack') {
    active = { impl: 'xnnpack' };
    return active.impl;
  }
  if (choice === 'auto' || choice === 'relaxed-simd') {
    const bytes = convModuleBytes('relaxed-simd');
    if (relaxedAvailable(bytes)) {
      active = { impl: 'relaxed-simd', module: new WebAssembly.Module(bytes) };
      return active.impl;
    }
    if (choice === 'relaxed-simd')
      throw new RuntimeError('WASM_CONV', `this Node.js (V8 ${process.versions.v8}) cannot compile relaxed-SIMD WebAssembly; use CVC_WASM_CONV=simd`);
  }
  const bytes = convModuleBytes('simd');
  if (WebAssembly.validate(bytes)) {
    active = { impl: 'simd', module: new WebAssembly.Module(bytes) };
    return active.impl;
  }
  if (choice === 'simd')
    throw new RuntimeError('WASM_CONV', `this Node.js (V8 ${process.versions.v8}) cannot compile WebAssembly SIMD; use CVC_WASM_CONV=xnnpack`);
  active = { impl: 'xnnpack' };
  return active.impl;
}

/** The convolution kernels selected now. */
export function wasmConvImpl(): WasmConvImpl {
  return active?.impl ?? selectWasmConv();
}

/** The backend's WebAssembly.Memory: exported by the plain build, imported (and shared) by the threaded one. */
function memoryOf(backend: ConvBackend): WasmMemory | undefined {
  const memory = backend.wasm?.asm?.memory ?? backend.wasm?.wasmMemory;
  return memory instanceof WebAssembly.Memory ? memory : undefined;
}

/**
 * cvc's kernels bound to this backend's memory, or undefined where XNNPACK
 * must do the work: another implementation was chosen, or the backend's
 * memory is shared (threads) and no kernel pool was started on it.
 */
export function kernelsFor(backend: ConvBackend): Kernels | undefined {
  if (active === undefined) selectWasmConv();
  const module = active?.module;
  if (module === undefined) return undefined;
  const memory = memoryOf(backend);
  if (memory === undefined) return undefined;
  if (!(memory.buffer instanceof ArrayBuffer)) {
    const pool = pools.get(memory);
    return pool === undefined ? undefined : cached(pool, memory, () => bindKernels(pool.exports as ConvExports, memory, pool));
  }
  return cached(module, memory, () => bindKernels(new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as ConvExports, memory));
}

function cached(key: object, memory: object, make: () => Kernels): Kernels {
  let byMemory = instances.get(key);
  if (byMemory === undefined) instances.set(key, (byMemory = new WeakMap()));
  let k = byMemory.get(memory);
  if (k === undefined) byMemory.set(memory, (k = make()));
  return k;
}

/**
 * Starts the pool of `threads` threads that runs cvc's kernels on the
 * threaded backend's shared memory (the calling thread and threads - 1
 * workers), with the shared-memory build of the selected kernels. Returns
 * undefined when there is nothing to start: XNNPACK was chosen, or the
 * backend's memory is not shared (one thread).
 */
export async function startKernelPool(backend: ConvBackend, threads: number): Promise<KernelPool | undefined> {
  const impl = wasmConvImpl();
  const memory = memoryOf(backend);
  if (impl === 'xnnpack' || memory === undefined || memory.buffer instanceof ArrayBuffer) return undefined;
  const existing = pools.get(memory);
  if (existing !== undefined) return existing;
  let module: object;
  try {
    module = new WebAssembly.Module(convModuleBytes(impl, true));
  } catch (err) {
    throw new RuntimeError(
      'WASM_THREADS',
      `this Node.js (V8 ${process.versions.v8}) cannot compile the shared-memory ${impl} kernels: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  const pool = await KernelPool.start(module, memory, threads);
  pools.set(memory, pool);
  return pool;
}

const F32 = 4;
export const ptr = (backend: ConvBackend, t: TensorInfo): number => {
  const d = backend.dataIdMap.get(t.dataId);
  if (d === undefined) throw new RuntimeError('WASM_CONV', 'a convolution input is not on the wasm backend');
  return d.memoryOffset;
};

/** Scratch buffers from the backend's malloc, freed together. */
export class Scratch {
  private readonly ptrs: number[] = [];
  constructor(private readonly backend: ConvBackend) {}
  /** `n` elements of `bytes` bytes each (4: float32), optionally zeroed; 16-byte aligned. */
  alloc(n: number, zero = false, bytes = F32): number {
    const size = Math.max(1, n) * bytes;
    const p = this.backend.wasm._malloc(size);
    if (p === 0) throw new RuntimeError('WASM_CONV', `out of wasm memory allocating ${size} bytes`);
    this.ptrs.push(p);
    if (zero) new Uint8Array((memoryOf(this.backend) as WasmMemory).buffer, p, size).fill(0);
    return p;
  }
  free(): void {
    for (const p of this.ptrs) this.backend.wasm._free(p);
  }
}

/**
 * Makes a float32 output of `shape`, fills it with `fill` (which may take
 * scratch buffers), frees the scratch buffers, and disposes the output if
 * `fill` throws.
 */
export function withOutput(backend: ConvBackend, shape: number[], fill: (out: TensorInfo, s: Scratch) => void): TensorInfo {
  const out = backend.makeOutput(shape, 'float32');
  const s = new Scratch(backend);
  try {
    fill(out, s);
  } catch (err) {
    backend.disposeData(out.dataId);
    throw err;
  } finally {
    s.free();
  }
  return out;
}

interface Geometry {
  n: number;
  ci: number;
  co: number;
  kh: number;
  kw: number;
  sh: number;
  sw: number;
  oh: number;
  ow: number;
}

/** The input padded as the geometry needs (or the input itself when it needs no padding). */
function padded(k: Kernels, backend: ConvBackend, s: Scratch, x: TensorInfo, info: backend_util.Conv2DInfo): { xp: number; hp: number; wp: number } {
  const { top, bottom, left, right } = info.padInfo;
  const hp = info.inHeight + top + bottom;
  const wp = info.inWidth + left + right;
  if (top === 0 && bottom === 0 && left === 0 && right === 0) return { xp: ptr(backend, x), hp, wp };
  const xp = s.alloc(info.batchSize * hp * wp * info.inChannels);
  k.pad_nhwc(ptr(backend, x), info.batchSize, info.inHeight, info.inWidth, info.inChannels, xp, hp, wp, top, left);
  return { xp, hp, wp };
}

/** Whether cvc's kernels handle this convolution (NHWC float32, dilation 1, padding that fits). */
function supported(info: backend_util.Conv2DInfo, ...tensors: TensorInfo[]): boolean {
  const { top, bottom, left, right } = info.padInfo;
  return (
    info.dataFormat === 'channelsLast' &&
    info.dilationHeight === 1 &&
    info.dilationWidth === 1 &&
    tensors.every((t) => t.dtype === 'float32') &&
    top >= 0 &&
    bottom >= 0 &&
    left >= 0 &&
    right >= 0 &&
    info.batchSize > 0 &&
    info.inChannels > 0 &&
    info.outChannels > 0 &&
    info.outHeight > 0 &&
    info.outWidth > 0 &&
    (info.outHeight - 1) * info.strideHeight + info.filterHeight <= info.inHeight + top + bottom &&
    (info.outWidth - 1) * info.strideWidth + info.filterWidth <= info.inWidth + left + right
  );
}

const geometry = (info: backend_util.Conv2DInfo): Geometry => ({
  n: info.batchSize,
  ci: info.inChannels,
  co: info.outChannels,
  kh: info.filterHeight,
  kw: info.filterWidth,
  sh: info.strideHeight,
  sw: info.strideWidth,
  oh: info.outHeight,
  ow: info.outWidth,
});

/**
 * Runs the forward kernel for geometry `g` on a padded input, for any number
 * of output channels: the 4-channel-block kernel, the dot-product kernel
 * under 4 channels, or zero filters padding the channels to a multiple of 4.
 */
function forwardConv(k: Kernels, s: Scratch, xp: number, hp: number, wp: number, g: Geometry, w: number, y: number): void {
  const call = (wPtr: number, co: number, yPtr: number, narrow: boolean) =>
    (narrow ? k.conv2d_narrow : k.conv2d)(xp, g.n, hp, wp, g.ci, wPtr, g.kh, g.kw, co, g.sh, g.sw, yPtr, g.oh, g.ow);
  const taps = g.kh * g.kw * g.ci;
  if (g.co % 4 === 0) {
    convPathCounts.forward++;
    call(w, g.co, y, false);
  } else if (g.co < 4) {
    // A dot product per pixel and channel, over the filter transposed to [Co][KH*KW*Ci].
    convPathCounts.forwardNarrow++;
    const wt = s.alloc(taps * g.co);
    k.transpose2d(w, taps, g.co, wt);
    call(wt, g.co, y, true);
  } else {
    // Channels padded with zero filters up to a multiple of 4, then cropped.
    convPathCounts.forwardPadded++;
    const co4 = Math.ceil(g.co / 4) * 4;
    const wpad = s.alloc(taps * co4);
    k.copy_rows(w, taps, g.co, wpad, co4);
    const ypad = s.alloc(g.n * g.oh * g.ow * co4);
    call(wpad, co4, ypad, false);
    k.copy_rows(ypad, g.n * g.oh * g.ow, co4, y, g.co);
  }
}

/**
 * Conv2D: cvc's kernel for NHWC float32 with dilation 1 (any stride and
 * padding); everything else goes to `original` (XNNPACK).
 */
export function makeConv2DKernel(original: KernelFunc): KernelFunc {
  return ((args: KernelArgs): TensorInfo | TensorInfo[] => {
    const backend = args.backend as ConvBackend;
    const x = args.inputs['x'] as TensorInfo;
    const filter = args.inputs['filter'] as TensorInfo;
    const attrs = args.attrs as unknown as Conv2DAttrs;
    const k = kernelsFor(backend);
    const info = backend_util.computeConv2DInfo(
      x.shape as [number, number, number, number],
      filter.shape as [number, number, number, number],
      attrs.strides,
      attrs.dilations,
      attrs.pad,
      attrs.dimRoundingMode,
      false,
      backend_util.convertConv2DDataFormat(attrs.dataFormat),
    );
    if (k === undefined || !supported(info, x, filter)) {
      convPathCounts.xnnpack++;
      return original(args);
    }
    const g = geometry(info);
    return withOutput(backend, [g.n, g.oh, g.ow, g.co], (out, s) => {
      const { xp, hp, wp } = padded(k, backend, s, x, info);
      forwardConv(k, s, xp, hp, wp, g, ptr(backend, filter), ptr(backend, out));
    });
  }) as unknown as KernelFunc;
}

/** The geometry of a Conv2DBackpropFilter call (dilation 1, as tfjs' gradient always asks). */
export function filterGradInfo(x: TensorInfo, attrs: Conv2DBackpropFilterAttrs): backend_util.Conv2DInfo {
  return backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    attrs.filterShape,
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    backend_util.convertConv2DDataFormat(attrs.dataFormat),
  );
}

/** dy rows (n, oh) processed together by the filter-gradient kernel: about 128 output pixels. */
const rowGroup = (ow: number): number => Math.max(1, Math.min(64, Math.ceil(128 / ow)));

/**
 * Conv2DBackpropFilter: dW[kh][kw][ci][co] = sum over the batch and output
 * pixels of xpadded[n][oh*sh+kh][ow*sw+kw][ci] * dy[n][oh][ow][co], in one
 * pass of cvc's kernel (no transposes); `fallback` where cvc's kernels are
 * not in use or do not apply.
 */
export function makeConv2DBackpropFilterKernel(fallback: KernelFunc): KernelFunc {
  return ((args: KernelArgs): TensorInfo | TensorInfo[] => {
    const backend = args.backend as ConvBackend;
    const x = args.inputs['x'] as TensorInfo;
    const dy = args.inputs['dy'] as TensorInfo;
    const attrs = args.attrs as unknown as Conv2DBackpropFilterAttrs;
    const k = kernelsFor(backend);
    const info = filterGradInfo(x, attrs);
    const g = geometry(info);
    const dyShapeOk = dy.shape.length === 4 && dy.shape[0] === g.n && dy.shape[1] === g.oh && dy.shape[2] === g.ow && dy.shape[3] === g.co;
    if (k === undefined || !dyShapeOk || !supported(info, x, dy)) {
      convPathCounts.xnnpack++;
      return fallback(args);
    }
    return withOutput(backend, [g.kh, g.kw, g.ci, g.co], (out, s) => {
      const { xp, hp, wp } = padded(k, backend, s, x, info);
      const group = rowGroup(g.ow);
      const rows = s.alloc(2 * group * k.chunks);
      const taps = g.kh * g.kw * g.ci;
      const pixels = g.n * g.oh * g.ow;
      const dw = ptr(backend, out);
      const run = (narrow: boolean, dyPtr: number, co: number, dwPtr: number) =>
        (narrow ? k.conv2d_filter_narrow : k.conv2d_filter)(xp, g.n, hp, wp, g.ci, dyPtr, g.oh, g.ow, co, g.sh, g.sw, dwPtr, g.kh, g.kw, rows, group);
      if (g.co % 4 === 0) {
        convPathCounts.filter++;
        backend.typedArrayFromHeap(out).fill(0);
        run(false, ptr(backend, dy), g.co, dw);
      } else if (g.co < 4) {
        // Vectorised over the taps into [Co][KH*KW*Ci], then transposed into place.
        convPathCounts.filterNarrow++;
        const dwt = s.alloc(taps * g.co, true);
        run(true, ptr(backend, dy), g.co, dwt);
        k.transpose2d(dwt, g.co, taps, dw);
      } else {
        convPathCounts.filterPadded++;
        const co4 = Math.ceil(g.co / 4) * 4;
        const dypad = s.alloc(pixels * co4);
        k.copy_rows(ptr(backend, dy), pixels, g.co, dypad, co4);
        const dwpad = s.alloc(taps * co4, true);
        run(false, dypad, co4, dwpad);
        k.copy_rows(dwpad, taps, co4, dw, g.co);
      }
    });
  }) as unknown as KernelFunc;
}

/**
 * BatchMatMul (a dense layer and its gradients): each product A[M,K] B[K,N]
 * is the 1x1 convolution of M pixels with K channels by a [1,1,K,N] filter,
 * so it runs on the forward kernel, with A or B transposed first when asked
 * (small copies). tfjs-backend-wasm hands these to XNNPACK, which repacks the
 * changing weights on every call: 4 ms for 32x512 by 512x128, this 0.2 ms.
 * Batches must match (no broadcasting); other cases go to `original`.
 */
export function makeBatchMatMulKernel(original: KernelFunc): KernelFunc {
  return ((args: KernelArgs): TensorInfo | TensorInfo[] => {
    const backend = args.backend as ConvBackend;
    const a = args.inputs['a'] as TensorInfo;
    const b = args.inputs['b'] as TensorInfo;
    const transposeA = args.attrs['transposeA'] === true;
    const transposeB = args.attrs['transposeB'] === true;
    const k = kernelsFor(backend);
    const ra = a.shape.length;
    const rb = b.shape.length;
    const lead = a.shape.slice(0, -2);
    if (k === undefined || a.dtype !== 'float32' || b.dtype !== 'float32' || ra < 2 || ra !== rb || lead.some((d, i) => d !== b.shape[i])) {
      convPathCounts.xnnpack++;
      return original(args);
    }
    const [a0, a1] = a.shape.slice(-2) as [number, number];
    const [b0, b1] = b.shape.slice(-2) as [number, number];
    const m = transposeA ? a1 : a0;
    const kk = transposeA ? a0 : a1;
    const n = transposeB ? b0 : b1;
    if (kk !== (transposeB ? b1 : b0)) throw new RuntimeError('WASM_CONV', `BatchMatMul inner dimensions differ: ${a.shape.join('x')} by ${b.shape.join('x')}`);
    const batches = lead.reduce((p, d) => p * d, 1);
    if (batches === 0 || m === 0 || n === 0 || kk === 0) {
      convPathCounts.xnnpack++;
      return original(args);
    }
    convPathCounts.matMul++;
    return withOutput(backend, [...lead, m, n], (out, s) => {
      const at = transposeA ? s.alloc(m * kk) : 0;
      const bt = transposeB ? s.alloc(kk * n) : 0;
      const g: Geometry = { n: 1, ci: kk, co: n, kh: 1, kw: 1, sh: 1, sw: 1, oh: 1, ow: m };
      for (let i = 0; i < batches; i++) {
        let ap = ptr(backend, a) + i * m * kk * F32;
        let bp = ptr(backend, b) + i * kk * n * F32;
        if (transposeA) {
          k.transpose2d(ap, kk, m, at);
          ap = at;
        }
        if (transposeB) {
          k.transpose2d(bp, n, kk, bt);
          bp = bt;
        }
        forwardConv(k, s, ap, 1, m, g, bp, ptr(backend, out) + i * m * n * F32);
      }
    });
  }) as unknown as KernelFunc;
}
