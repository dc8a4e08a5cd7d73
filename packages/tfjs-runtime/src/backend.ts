import { ConfigError, silentLogger, type Logger } from '@cvc/core';
import { tf } from './tf.js';
import { RuntimeError } from './errors.js';
import { registerWasmTrainingKernels } from './wasm-kernels.js';
import { registerBatchNormGradient } from './batchnorm-grad.js';
import { registerReduceGradients } from './reduce-grads.js';
import { prepareWasmThreads } from './wasm-threads.js';
import { selectWasmConv, startKernelPool, type ConvBackend, type WasmConvImpl } from './wasm-conv.js';

/**
 * `auto` picks @tensorflow/tfjs-node-gpu, then @tensorflow/tfjs-node, then
 * wasm. `tensorflow` insists on a native package; `cpu` is the pure-JS
 * backend (correct but far too slow to train real models).
 */
export type BackendChoice = 'auto' | 'tensorflow' | 'wasm' | 'cpu';
export const BACKEND_CHOICES: readonly BackendChoice[] = ['auto', 'tensorflow', 'wasm', 'cpu'];

export interface BackendInfo {
  /** The tfjs backend name now active: `tensorflow`, `wasm` or `cpu`. */
  readonly name: string;
  /** Which package provides it, e.g. `@tensorflow/tfjs-node-gpu`. */
  readonly provider: string;
  /** Threads the wasm backend computes with (cvc's kernel pool and XNNPACK's); absent for other backends. */
  readonly threads?: number;
  /** The wasm backend's convolution kernels (see WasmConvChoice); absent for other backends. */
  readonly conv?: WasmConvImpl;
}

export interface BackendOptions {
  /**
   * Threads for the wasm backend (default 1). With more, the backend's
   * threaded build runs on Node worker_threads and cvc's kernels on a pool of
   * as many threads over its shared memory (see defaultWasmThreads).
   */
  readonly wasmThreads?: number;
  /**
   * The wasm backend's convolution kernels: auto (default, from $CVC_WASM_CONV
   * when set), relaxed-simd, simd or xnnpack.
   */
  readonly wasmConv?: string;
}

const NATIVE = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] as const;

async function tryNative(logger: Logger): Promise<BackendInfo | undefined> {
  for (const pkg of NATIVE) {
    try {
      // A variable specifier: these are optionalDependencies and may be absent.
      const spec: string = pkg;
      await import(spec);
      if (await tf.setBackend('tensorflow')) {
        await tf.ready();
        return { name: 'tensorflow', provider: pkg };
      }
    } catch (err) {
      logger.debug('native backend unavailable', { package: pkg, reason: (err as Error).message });
    }
  }
  return undefined;
}

async function useWasm(threads: number, conv: string | undefined, logger: Logger): Promise<BackendInfo> {
  const chosen = selectWasmConv(conv);
  registerWasmTrainingKernels();
  // With cvc's kernels on cvc's pool, XNNPACK (the few ops left to it) keeps one thread: its pool busy-waits.
  const ownPool = threads > 1 && chosen !== 'xnnpack';
  const restore = threads > 1 ? await prepareWasmThreads(threads, ownPool ? 1 : threads) : () => {};
  try {
    if (!(await tf.setBackend('wasm'))) throw new RuntimeError('BACKEND_INIT', 'the wasm backend failed to initialise');
    await tf.ready();
  } finally {
    restore();
  }
  const wasm = (tf.backend() as unknown as { wasm?: { tfjs?: { getThreadsCount?: () => number }; PThread?: { runningWorkers?: { unref?: () => void }[] } } })
    .wasm;
  // The pool's threads wait for work forever; they must not keep the process alive.
  for (const w of wasm?.PThread?.runningWorkers ?? []) w.unref?.();
  const n = wasm?.tfjs?.getThreadsCount?.() ?? 1;
  const info = { name: 'wasm', provider: '@tensorflow/tfjs-backend-wasm' } as const;
  if (!ownPool) return { ...info, threads: n, conv: chosen };
  try {
    const pool = await startKernelPool(tf.backend() as unknown as ConvBackend, threads);
    if (pool !== undefined) return { ...info, threads, conv: chosen };
  } catch (err) {
    logger.warn("cvc's kernel thread pool did not start; convolutions run on XNNPACK, single-threaded", { reason: (err as Error).message });
  }
  return { ...info, threads: n, conv: 'xnnpack' };
}

/** Selects and initialises a backend; returns which one is active. */
export async function initBackend(choice: BackendChoice = 'auto', logger: Logger = silentLogger, opts: BackendOptions = {}): Promise<BackendInfo> {
  const threads = opts.wasmThreads ?? 1;
  if (!Number.isInteger(threads) || threads < 1 || threads > 64) throw new ConfigError('wasm threads', `must be an integer 1..64, got ${threads}`);
  if (!BACKEND_CHOICES.includes(choice)) {
    throw new ConfigError('backend', `unknown backend '${String(choice)}' (choose one of ${BACKEND_CHOICES.join(', ')})`);
  }
  registerBatchNormGradient();
  registerReduceGradients();
  switch (choice) {
    case 'cpu':
      await tf.setBackend('cpu');
      await tf.ready();
      return { name: 'cpu', provider: '@tensorflow/tfjs-backend-cpu' };
    case 'wasm':
      return useWasm(threads, opts.wasmConv, logger);
    case 'tensorflow': {
      const native = await tryNative(logger);
      if (native) return native;
      throw new RuntimeError(
        'BACKEND_UNAVAILABLE',
        `backend 'tensorflow' needs ${NATIVE.join(' or ')}, and neither loads here (their install downloads libtensorflow); use --backend wasm or auto`,
      );
    }
    case 'auto': {
      const native = await tryNative(logger);
      return native ?? useWasm(threads, opts.wasmConv, logger);
    }
  }
}
