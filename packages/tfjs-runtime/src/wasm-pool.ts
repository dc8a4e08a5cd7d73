import { Worker } from 'node:worker_threads';
import { RuntimeError } from './errors.js';
import {
  C_DEAD,
  C_DONE,
  C_ERROR,
  C_ERROR_LEN,
  C_GEN,
  C_TICKET,
  C_WORKER_CHUNKS,
  CONTROL_BYTES,
  controlViews,
  JOB_SLOTS,
  JobReader,
  MAX_CHUNKS,
  poolFns,
  takeChunks,
  writeJob,
  type Control,
  type PoolKernel,
  type Split,
} from './wasm-pool-job.js';

const WebAssembly = (globalThis as unknown as { WebAssembly: { Instance: new (m: object, i: object) => { exports: object } } }).WebAssembly;

/** How long the main thread waits without progress, once a pool thread has exited, before it gives the pool up. */
const DEAD_WAIT_MS = 2000;

/**
 * A pool of threads that run cvc's kernels (csrc/conv.c, built for shared
 * memory) on the wasm backend's shared WebAssembly.Memory: `threads - 1`
 * Node worker_threads plus the calling (main) thread, which takes chunks of
 * every job too and waits for the rest with Atomics.wait. Jobs are split into
 * chunks that write disjoint parts of the output (wasm-pool-job.ts), so a
 * pooled call computes exactly what one call over the whole range computes.
 * The workers never allocate: scratch comes from the main thread's malloc.
 * A kernel that fails on any thread throws RuntimeError WASM_THREADS; a pool
 * that lost a thread runs every later job on the main thread alone.
 */
export class KernelPool {
  private readonly ctl: Control;
  private readonly fns: ReturnType<typeof poolFns>;
  private readonly local = new Float64Array(JOB_SLOTS);
  private gen = 0;
  private broken: string | undefined;
  /** Jobs run, and those handed to the worker threads (for tests and profiles). */
  readonly stats = { jobs: 0, pooledJobs: 0 };
  /** The kernel module's exports on the main thread. */
  readonly exports: object;

  private constructor(
    readonly threads: number,
    private readonly workers: Worker[],
    control: SharedArrayBuffer,
    mainExports: object,
  ) {
    this.ctl = controlViews(control);
    this.exports = mainExports;
    this.fns = poolFns(mainExports);
  }

  /**
   * Starts `threads - 1` workers that instantiate `module` (the shared-memory
   * kernel module) on `memory`, and resolves once all of them are ready.
   */
  static async start(module: object, memory: object, threads: number): Promise<KernelPool> {
    if (!Number.isInteger(threads) || threads < 1 || threads > 64) throw new RuntimeError('WASM_THREADS', `kernel pool threads must be 1..64, got ${threads}`);
    const control = new SharedArrayBuffer(CONTROL_BYTES);
    const mainExports = new WebAssembly.Instance(module, { env: { memory } }).exports;
    const workers: Worker[] = [];
    try {
      for (let i = 1; i < threads; i++) {
        const w = new Worker(new URL('./wasm-pool-worker.js', import.meta.url), { workerData: { module, memory, control } });
        workers.push(w);
        await new Promise<void>((resolve, reject) => {
          w.once('message', () => resolve());
          w.once('error', (err) => reject(new RuntimeError('WASM_THREADS', `kernel pool thread ${i} failed to start: ${err.message}`, { cause: err })));
          w.once('exit', (code) => reject(new RuntimeError('WASM_THREADS', `kernel pool thread ${i} exited (code ${code}) before it was ready`)));
        });
        w.removeAllListeners();
        // A failure later is seen through the control block (C_DEAD, C_ERROR); keep 'error' from crashing the process.
        w.on('error', () => {});
        w.unref();
      }
    } catch (err) {
      await Promise.all(workers.map((w) => w.terminate()));
      throw err;
    }
    return new KernelPool(threads, workers, control, mainExports);
  }

  /** Chunks the worker threads ran, over all jobs. */
  get workerChunks(): number {
    return Atomics.load(this.ctl.ints, C_WORKER_CHUNKS);
  }

  /** Whether jobs still go to the worker threads. */
  get healthy(): boolean {
    return this.broken === undefined;
  }

  /**
   * Runs `kernel(args)` split as `split` into up to `chunks` chunks on the
   * pool (on the main thread alone for one chunk, or when the pool lost a
   * thread), and returns when every chunk is done.
   */
  run(kernel: PoolKernel, args: readonly number[], split: Split, chunks: number): void {
    const k = Math.max(1, Math.min(Math.floor(chunks), split.units, MAX_CHUNKS));
    this.stats.jobs++;
    if (k === 1 || this.workers.length === 0 || this.broken !== undefined) {
      writeJob(this.local, kernel, args, split, k);
      const reader = new JobReader(this.local);
      const fn = this.fns[reader.kernel];
      if (fn === undefined) throw new RuntimeError('WASM_THREADS', `the kernel module has no ${kernel}`);
      for (let c = 0; c < k; c++) {
        const a = reader.chunkArgs(c);
        if (a !== undefined) fn(...a);
      }
      return;
    }
    this.stats.pooledJobs++;
    const { ints, job } = this.ctl;
    // A worker waking late for the previous job may still hold its generation: invalidate the ticket (generation 0 is
    // never used) before the record is rewritten, so such a worker sees no chunk to take instead of a half-written job.
    Atomics.store(ints, C_TICKET, 0);
    writeJob(job, kernel, args, split, k);
    Atomics.store(ints, C_DONE, 0);
    Atomics.store(ints, C_ERROR, 0);
    this.gen = (this.gen % 0x7fff) + 1;
    Atomics.store(ints, C_TICKET, this.gen << 16);
    Atomics.store(ints, C_GEN, this.gen);
    Atomics.notify(ints, C_GEN);
    takeChunks(this.ctl, this.gen, new JobReader(job), this.fns, false);
    let waited = 0;
    for (let done = Atomics.load(ints, C_DONE); done < k; done = Atomics.load(ints, C_DONE)) {
      const dead = Atomics.load(ints, C_DEAD);
      const r = Atomics.wait(ints, C_DONE, done, dead > 0 ? 100 : 1000);
      waited = r === 'timed-out' && Atomics.load(ints, C_DONE) === done ? waited + (dead > 0 ? 100 : 0) : 0;
      if (waited >= DEAD_WAIT_MS) {
        this.broken = `${dead} kernel pool thread(s) exited`;
        throw new RuntimeError('WASM_THREADS', `${kernel}: ${this.broken} with chunks of a job unfinished; later kernels run on the main thread`);
      }
    }
    if (Atomics.load(ints, C_ERROR) !== 0) {
      const msg = new TextDecoder().decode(this.ctl.error.slice(0, Atomics.load(ints, C_ERROR_LEN)));
      throw new RuntimeError('WASM_THREADS', `a kernel failed on the thread pool: ${msg}`);
    }
  }

  /** Stops the worker threads. */
  async close(): Promise<void> {
    this.broken ??= 'closed';
    Atomics.store(this.ctl.ints, C_GEN, -1);
    Atomics.notify(this.ctl.ints, C_GEN);
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
