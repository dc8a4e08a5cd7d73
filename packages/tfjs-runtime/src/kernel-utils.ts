import { getKernel, type KernelBackend, type NamedAttrMap, type TensorInfo, util } from '@tensorflow/tfjs-core';
import { tf } from './tf.js';

/** The parts of tfjs-backend-wasm's backend that cvc's kernels use. */
export interface WasmBackend extends KernelBackend {
  makeOutput(shape: number[], dtype: 'float32', memoryOffset?: number, values?: Float32Array): TensorInfo;
  /** A view of a tensor's data on the wasm heap (invalidated when the heap grows). */
  typedArrayFromHeap(t: TensorInfo): Float32Array;
}

/** What a kernel function receives. */
export interface KernelArgs {
  inputs: Record<string, TensorInfo>;
  backend: KernelBackend;
  attrs: NamedAttrMap;
}

/** Runs another kernel registered for `backend` directly (no engine bookkeeping). */
export function callKernel(name: string, backend: KernelBackend, inputs: Record<string, TensorInfo>, attrs: NamedAttrMap, backendName: string): TensorInfo {
  const k = getKernel(name, backendName);
  if (k === undefined) throw new Error(`kernel ${name} is not registered for ${backendName}`);
  const out = k.kernelFunc({ inputs, backend, attrs });
  if (Array.isArray(out)) throw new Error(`kernel ${name} returned several outputs`);
  return out;
}

/**
 * Runs `name` on the cpu backend with inputs copied from `backend`, and copies
 * the result back: slow but always correct, the fallback for attributes a fast
 * kernel does not handle.
 */
export function runOnCpu(
  name: string,
  backend: KernelBackend,
  inputs: Record<string, TensorInfo>,
  attrs: NamedAttrMap,
  makeOutput: (shape: number[], dtype: 'float32', values: Float32Array) => TensorInfo,
): TensorInfo {
  const cpu = tf.engine().findBackend('cpu');
  if (cpu === null) throw new Error('the cpu backend is not available for a fallback kernel');
  const cpuInputs: Record<string, TensorInfo> = {};
  const made: TensorInfo[] = [];
  try {
    for (const [key, info] of Object.entries(inputs)) {
      const values = backend.readSync(info.dataId) as Float32Array;
      const dataId = cpu.write(values.slice(), info.shape, info.dtype);
      const ci = { dataId, shape: info.shape, dtype: info.dtype };
      made.push(ci);
      cpuInputs[key] = ci;
    }
    const out = callKernel(name, cpu, cpuInputs, attrs, 'cpu');
    made.push(out);
    const values = cpu.readSync(out.dataId) as Float32Array;
    if (values.length !== util.sizeFromShape(out.shape)) throw new Error(`${name} fallback produced a wrong size`);
    return makeOutput(out.shape.slice(), 'float32', Float32Array.from(values));
  } finally {
    for (const m of made) cpu.disposeData(m.dataId);
  }
}
