/**
 * A thread of the kernel pool (wasm-pool.ts): instantiates cvc's
 * shared-memory kernel module on the backend's shared WebAssembly.Memory,
 * says it is ready, then sleeps on the control block's generation word and,
 * each time it changes, takes chunks of the job (wasm-pool-job.ts) until none
 * is left. It never allocates on the wasm heap: every buffer a kernel uses was
 * allocated by the main thread. Exits when the generation becomes -1.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { C_DEAD, C_DONE, C_GEN, controlViews, JobReader, poolFns, takeChunks } from './wasm-pool-job.js';

interface PoolWorkerData {
  module: object;
  memory: object;
  control: SharedArrayBuffer;
}

const WebAssembly = (globalThis as unknown as { WebAssembly: { Instance: new (m: object, i: object) => { exports: object } } }).WebAssembly;
const { module, memory, control } = workerData as PoolWorkerData;
const ctl = controlViews(control);
process.on('exit', () => {
  Atomics.add(ctl.ints, C_DEAD, 1);
  Atomics.notify(ctl.ints, C_DONE);
});
const fns = poolFns(new WebAssembly.Instance(module, { env: { memory } }).exports);
parentPort?.postMessage('ready');

let seen = Atomics.load(ctl.ints, C_GEN);
for (;;) {
  Atomics.wait(ctl.ints, C_GEN, seen);
  seen = Atomics.load(ctl.ints, C_GEN);
  if (seen < 0) break;
  takeChunks(ctl, seen, new JobReader(ctl.job), fns, true);
}
