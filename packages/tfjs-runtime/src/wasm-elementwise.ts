import { readFileSync } from 'node:fs';
import {
  Add,
  registerGradient,
  Relu,
  backend_util,
  Conv2D,
  FusedConv2D,
  getKernel,
  Multiply,
  registerKernel,
  Sub,
  unregisterKernel,
  util,
  type KernelConfig,
  type KernelFunc,
  type NamedAttrMap,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { callKernel, type KernelArgs } from './kernel-utils.js';
import { tf } from './tf.js';
import { ptr, wasmConvImpl, type ConvBackend } from './wasm-conv.js';

/** The kernels exported by csrc/elementwise.c (pointers are byte offsets into the backend's heap). */
interface ElementwiseExports {
  binary_same(op: number, a: number, b: number, out: number, n: number): void;
  binary_rows(op: number, a: number, rows: number, cols: number, v: number, out: number): void;
  binary_scalar(op: number, a: number, n: number, s: number, out: number): void;
  bias_act(y: number, rows: number, cols: number, bias: number, act: number): void;
  relu_grad(dy: number, x: number, out: number, n: number): void;
}

/** The few WebAssembly JS API members used here (the project's TypeScript libs do not declare them). */
interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: object };
  Memory: abstract new (...args: never[]) => { readonly buffer: ArrayBuffer | SharedArrayBuffer };
}
const WebAssembly = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

const ADD = 0;
const SUB = 1;
const MUL = 2;
const RSUB = 3;

/**
 * Which calls took cvc's kernels, and a switch: `enabled = false` sends every
 * call to tfjs-backend-wasm's own kernels (for before/after measurements).
 */
export const elementwiseCounts = { same: 0, rows: 0, scalar: 0, fusedConv: 0, reluGrad: 0, fallback: 0 };
export const elementwiseSwitch = { enabled: true };

/** The compiled module file, beside dist/ in wasm/ (`shared`: the build that imports a shared memory, for threads). */
export function elementwiseModuleBytes(shared = false): Uint8Array {
  return readFileSync(new URL(`../wasm/cvc-elementwise${shared ? '-shared' : ''}.wasm`, import.meta.url));
}

const compiled: { plain?: object | null; shared?: object | null } = {};
const instances = new WeakMap<object, ElementwiseExports>();

/**
 * The kernels bound to this backend's memory (the shared-memory build where
 * the backend runs threads; the kernels themselves run on the calling
 * thread), or undefined where the engine has no SIMD.
 */
function kernels(backend: ConvBackend): ElementwiseExports | undefined {
  const memory = backend.wasm?.asm?.memory ?? (backend.wasm as { wasmMemory?: unknown } | undefined)?.wasmMemory;
  if (!(memory instanceof WebAssembly.Memory)) return undefined;
  const kind = memory.buffer instanceof ArrayBuffer ? 'plain' : 'shared';
  if (compiled[kind] === undefined) {
    const bytes = elementwiseModuleBytes(kind === 'shared');
    compiled[kind] = WebAssembly.validate(bytes) ? new WebAssembly.Module(bytes) : null;
  }
  const mod = compiled[kind];
  if (mod === null || mod === undefined) return undefined;
  let k = instances.get(memory);
  if (k === undefined) {
    k = new WebAssembly.Instance(mod, { env: { memory } }).exports as unknown as ElementwiseExports;
    instances.set(memory, k);
  }
  return k;
}

const sameShape = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((d, i) => d === b[i]);

/**
 * Whether `v` broadcasts along the last axis of `big`: its shape is
 * [..., 1, C] (rank at most big's) with C = big's last dimension.
 */
function isRowVector(v: readonly number[], big: readonly number[]): boolean {
  if (v.length === 0 || v.length > big.length) return false;
  const c = v[v.length - 1] as number;
  return c === big[big.length - 1] && v.slice(0, -1).every((d) => d === 1);
}

/**
 * Add, Sub or Multiply of two float32 tensors in cvc's SIMD kernels where
 * the broadcast is one of: equal shapes; a per-channel vector along the last
 * axis ([C] or [1,...,1,C] against [..., C]: the bias adds and batch-norm
 * arithmetic), on either side; a single value on either side. Anything else
 * (other dtypes, other broadcasts) goes to `original`.
 */
function makeBinaryKernel(op: typeof ADD | typeof SUB | typeof MUL, original: KernelFunc): KernelFunc {
  return ((args: KernelArgs) => {
    const a = args.inputs['a'] as TensorInfo;
    const b = args.inputs['b'] as TensorInfo;
    const backend = args.backend as ConvBackend;
    const k = elementwiseSwitch.enabled && a.dtype === 'float32' && b.dtype === 'float32' ? kernels(backend) : undefined;
    if (k === undefined) return original(args);
    const outShape = backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
    const n = util.sizeFromShape(outShape);
    const na = util.sizeFromShape(a.shape);
    const nb = util.sizeFromShape(b.shape);
    // The operand with the output's shape, the other one, and the op with that order.
    let big: TensorInfo;
    let small: TensorInfo;
    let o: number;
    if (sameShape(a.shape, outShape) && na === n) {
      big = a;
      small = b;
      o = op;
    } else if (sameShape(b.shape, outShape) && nb === n) {
      big = b;
      small = a;
      o = op === SUB ? RSUB : op;
    } else {
      elementwiseCounts.fallback++;
      return original(args);
    }
    const ns = util.sizeFromShape(small.shape);
    if (n === 0) return backend.makeOutput(outShape, 'float32');
    if (ns === n && sameShape(small.shape, big.shape)) {
      const out = backend.makeOutput(outShape, 'float32');
      k.binary_same(o, ptr(backend, big), ptr(backend, small), ptr(backend, out), n);
      elementwiseCounts.same++;
      return out;
    }
    if (ns === 1) {
      const out = backend.makeOutput(outShape, 'float32');
      const s = backend.typedArrayFromHeap(small)[0] as number;
      k.binary_scalar(o, ptr(backend, big), n, s, ptr(backend, out));
      elementwiseCounts.scalar++;
      return out;
    }
    if (isRowVector(small.shape, big.shape)) {
      const cols = big.shape[big.shape.length - 1] as number;
      const out = backend.makeOutput(outShape, 'float32');
      k.binary_rows(o, ptr(backend, big), n / cols, cols, ptr(backend, small), ptr(backend, out));
      elementwiseCounts.rows++;
      return out;
    }
    elementwiseCounts.fallback++;
    return original(args);
  }) as unknown as KernelFunc;
}

/**
 * FusedConv2D (the layers' conv2d at inference: convolution, bias, activation)
 * as the backend's registered Conv2D (cvc's SIMD kernels where they apply)
 * followed by one in-place pass of bias add and linear/relu activation. Other
 * activations, PReLU / leaky-ReLU weights, a bias that is not per-channel, and
 * NCHW go to `original` (XNNPACK's fused convolution), and so does every call
 * where XNNPACK's convolutions were chosen (CVC_WASM_CONV=xnnpack).
 */
function makeFusedConvKernel(original: KernelFunc): KernelFunc {
  return ((args: KernelArgs) => {
    const { x, filter, bias, preluActivationWeights } = args.inputs as Record<string, TensorInfo | undefined>;
    const attrs = args.attrs as NamedAttrMap & { activation?: string; dataFormat?: string; leakyreluAlpha?: number };
    const backend = args.backend as ConvBackend;
    const act = attrs.activation === undefined || attrs.activation === 'linear' ? 0 : attrs.activation === 'relu' ? 1 : -1;
    const co = filter?.shape[3];
    // Only over cvc's convolutions: with XNNPACK's, its own fused kernel is the faster one.
    const k = elementwiseSwitch.enabled && wasmConvImpl() !== 'xnnpack' ? kernels(backend) : undefined;
    if (
      k === undefined ||
      act < 0 ||
      x === undefined ||
      filter === undefined ||
      preluActivationWeights !== undefined ||
      (attrs.dataFormat !== undefined && attrs.dataFormat !== 'NHWC') ||
      x.dtype !== 'float32' ||
      filter.dtype !== 'float32' ||
      (bias !== undefined && (bias.dtype !== 'float32' || bias.shape.length !== 1 || bias.shape[0] !== co))
    ) {
      elementwiseCounts.fallback++;
      return original(args);
    }
    const convAttrs = {
      strides: attrs['strides'],
      pad: attrs['pad'],
      dataFormat: 'NHWC',
      dilations: attrs['dilations'],
      dimRoundingMode: attrs['dimRoundingMode'],
    };
    const y = callKernel(Conv2D, backend, { x, filter }, convAttrs as unknown as NamedAttrMap, 'wasm');
    const cols = y.shape[3] as number;
    const n = util.sizeFromShape(y.shape);
    if (n > 0 && (bias !== undefined || act !== 0)) k.bias_act(ptr(backend, y), n / cols, cols, bias === undefined ? 0 : ptr(backend, bias), act);
    elementwiseCounts.fusedConv++;
    return y;
  }) as unknown as KernelFunc;
}

/** The fused ReLU gradient's kernel name (registered for the wasm and cpu backends). */
export const CVC_RELU_GRAD = 'CvcReluGrad';

/** step(x) as tfjs-core computes it for the ReLU gradient: 1 where x > 0, NaN where x is NaN, else 0. */
const stepOf = (v: number): number => (Number.isNaN(v) ? Number.NaN : v > 0 ? 1 : 0);

/** CvcReluGrad on the wasm backend: cvc's SIMD kernel, or a JavaScript loop where it is not available. */
function reluGradWasm(args: KernelArgs): TensorInfo {
  const backend = args.backend as ConvBackend;
  const dy = args.inputs['dy'] as TensorInfo;
  const x = args.inputs['x'] as TensorInfo;
  const out = backend.makeOutput(x.shape.slice(), 'float32');
  const n = util.sizeFromShape(x.shape);
  const k = kernels(backend);
  if (k !== undefined) k.relu_grad(ptr(backend, dy), ptr(backend, x), ptr(backend, out), n);
  else {
    const dv = backend.typedArrayFromHeap(dy);
    const xv = backend.typedArrayFromHeap(x);
    const ov = backend.typedArrayFromHeap(out);
    for (let i = 0; i < n; i++) ov[i] = (dv[i] as number) * stepOf(xv[i] as number);
  }
  elementwiseCounts.reluGrad++;
  return out;
}

interface CpuBackend {
  data: { get(dataId: unknown): { values: Float32Array } };
  makeTensorInfo(shape: number[], dtype: 'float32', values: Float32Array): TensorInfo;
}

/** CvcReluGrad on the cpu backend (a reference and a fallback). */
function reluGradCpu(args: KernelArgs): TensorInfo {
  const backend = args.backend as unknown as CpuBackend;
  const dy = args.inputs['dy'] as TensorInfo;
  const x = args.inputs['x'] as TensorInfo;
  const dv = backend.data.get(dy.dataId).values;
  const xv = backend.data.get(x.dataId).values;
  const ov = new Float32Array(xv.length);
  for (let i = 0; i < ov.length; i++) ov[i] = (dv[i] as number) * stepOf(xv[i] as number);
  return backend.makeTensorInfo(x.shape.slice(), 'float32', ov);
}

/**
 * ReLU's gradient as one kernel (dy * step(x) without the step tensor) where
 * the active backend has CvcReluGrad, both tensors are float32 of one shape
 * and the switch is on; tfjs-core's mul(dy, cast(step(x))) otherwise.
 */
function registerReluGradient(): void {
  registerGradient({
    kernelName: Relu,
    inputsToSave: ['x'],
    gradFunc: (dy, saved) => {
      const [x] = saved as [tf.Tensor];
      const g = dy as tf.Tensor;
      const fused =
        elementwiseSwitch.enabled &&
        getKernel(CVC_RELU_GRAD, tf.getBackend()) !== undefined &&
        g.dtype === 'float32' &&
        x.dtype === 'float32' &&
        sameShape(g.shape, x.shape);
      return { x: () => (fused ? tf.engine().runKernel<tf.Tensor>(CVC_RELU_GRAD, { dy: g, x }, {}) : tf.mul(g, tf.cast(tf.step(x), 'float32'))) };
    },
  });
}

/** Replaces the wasm backend's kernel `name` with `make(original)`, keeping the original's setup function. */
function replaceKernel(name: string, make: (original: KernelFunc) => KernelFunc): void {
  const orig = getKernel(name, 'wasm');
  if (orig === undefined) return;
  unregisterKernel(name, 'wasm');
  const cfg: KernelConfig = { kernelName: name, backendName: 'wasm', kernelFunc: make(orig.kernelFunc) };
  if (orig.setupFunc) cfg.setupFunc = orig.setupFunc;
  registerKernel(cfg);
}

let registered = false;

/**
 * Registers cvc's elementwise kernels over the wasm backend's Add, Sub,
 * Multiply and FusedConv2D, the fused ReLU gradient kernel (wasm and cpu) and
 * the ReLU gradient that uses it (idempotent; before or after the backend starts).
 */
export function registerWasmElementwiseKernels(): void {
  if (registered) return;
  registered = true;
  replaceKernel(Add, (o) => makeBinaryKernel(ADD, o));
  replaceKernel(Sub, (o) => makeBinaryKernel(SUB, o));
  replaceKernel(Multiply, (o) => makeBinaryKernel(MUL, o));
  replaceKernel(FusedConv2D, (o) => makeFusedConvKernel(o));
  registerKernel({ kernelName: CVC_RELU_GRAD, backendName: 'wasm', kernelFunc: reluGradWasm as unknown as KernelFunc });
  registerKernel({ kernelName: CVC_RELU_GRAD, backendName: 'cpu', kernelFunc: reluGradCpu as unknown as KernelFunc });
  registerReluGradient();
}
