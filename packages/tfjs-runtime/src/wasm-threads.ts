import { createRequire } from 'node:module';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import os, { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import { tf } from './tf.js';
import { RuntimeError } from './errors.js';

const require = createRequire(import.meta.url);

/**
 * Lets the wasm backend's threaded build (XNNPACK with a pthread pool) run in
 * Node. TensorFlow.js turns threads off in Node (WASM_HAS_MULTITHREAD_SUPPORT
 * is false when IS_NODE, tfjs#3830) because its pthread glue hands the worker
 * script and the main script to the workers as Blob URLs, which Node's
 * worker_threads cannot load. The emscripten glue itself supports
 * worker_threads, so: the worker script is written to a file (with a prelude
 * that makes the worker's Blob URL for the main script resolve to the
 * package's own wasm-out/tfjs-backend-wasm-threaded-simd.js), the main
 * thread's URL.createObjectURL answers that file for the worker script while
 * the backend initialises, and the flag is set. One more obstacle: the
 * backend caps its pool at emscripten_num_logical_cores() / 2 (it assumes two
 * hardware threads per core), which in Node is os.cpus().length / 2, read
 * once while the module initialises; os.cpus() answers 2 x `threads` entries
 * until then. `xnnpackThreads` (default `threads`, at most `threads`) is
 * the size of XNNPACK's own pool: 1 when cvc's kernel pool does the heavy
 * work, since XNNPACK's pool busy-waits for its threads and so takes CPU
 * from cvc's on a busy machine. Returns a function that restores
 * URL.createObjectURL and os.cpus (call it once the backend is ready).
 */
export async function prepareWasmThreads(threads: number, xnnpackThreads: number = threads): Promise<() => void> {
  if (!Number.isInteger(threads) || threads < 1 || threads > 64) throw new RuntimeError('BACKEND_INIT', `wasm threads must be 1..64, got ${threads}`);
  const root = dirname(dirname(require.resolve('@tensorflow/tfjs-backend-wasm')));
  const out = join(root, 'wasm-out');
  const mainScript = join(out, 'tfjs-backend-wasm-threaded-simd.js');
  const { wasmWorkerContents } = require(join(out, 'tfjs-backend-wasm-threaded-simd.worker.js')) as { wasmWorkerContents: string };
  const { version } = require(join(root, 'package.json')) as { version: string };
  const dir = join(tmpdir(), `cvc-tfjs-wasm-threads-${version}-${process.getuid?.() ?? 0}`);
  await mkdir(dir, { recursive: true });
  const workerFile = join(dir, 'pthread-worker.cjs');
  const prelude = [
    '// Written by cvc (@cvc/tfjs-runtime): the pthread worker of the threaded wasm build, for Node worker_threads.',
    `URL.createObjectURL = () => ${JSON.stringify(mainScript)};`,
    'URL.revokeObjectURL = () => {};',
    '',
  ].join('\n');
  // Written whole under a unique name, then renamed: processes starting together never see half a file.
  const tmp = `${workerFile}.${process.pid}.${Date.now()}`;
  // As tfjs does for its Blob: the contents carry newlines meant to stay escaped inside string literals.
  await writeFile(tmp, prelude + wasmWorkerContents.replace(/\n/g, '\\n'));
  await rename(tmp, workerFile);
  const original = URL.createObjectURL.bind(URL);
  URL.createObjectURL = (obj: Parameters<typeof URL.createObjectURL>[0]): string =>
    obj instanceof Blob && obj.type === 'application/javascript' ? workerFile : original(obj);
  const cpus = os.cpus.bind(os);
  os.cpus = (): os.CpuInfo[] => {
    const real = cpus();
    return Array.from({ length: 2 * threads }, (_, i) => real[i % Math.max(1, real.length)] as os.CpuInfo);
  };
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  setThreadsCount(Math.max(1, Math.min(threads, xnnpackThreads)));
  return () => {
    URL.createObjectURL = original;
    os.cpus = cpus;
  };
}
