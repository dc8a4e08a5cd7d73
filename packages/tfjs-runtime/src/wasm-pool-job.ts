/**
 * The layout of a thread-pool job in shared memory, and the loop every pool
 * thread (the main thread included) runs to take its chunks: shared by
 * wasm-pool.ts (the main thread) and wasm-pool-worker.ts (the workers).
 *
 * A job is one call of a kernel of csrc/conv.c split into chunks: `units`
 * units of work cut into `chunks` contiguous ranges; for chunk c, units
 * u0..u1-1 (u0 = floor(c * units / chunks)) are elements e0 = u0 * scale ..
 * e1 = u1 * scale (capped at `total`), and the kernel's arguments become: the
 * `start`/`end` argument e0/e1, each `counts` argument e1 - e0, each `offsets`
 * argument plus e0 * its bytes per element, each `perChunk` argument plus c *
 * its bytes per chunk (per-thread scratch). Threads take chunks one at a time
 * from a ticket word (the job's generation in the high 16 bits, the next chunk
 * in the low 16), so a thread that wakes late, or is slowed by another
 * process, takes fewer chunks, and one that wakes after the job ended takes
 * none. Every chunk writes only its own part of the output, so the result
 * does not depend on which thread ran which chunk.
 */

/** The kernels a job may run, by index. */
export const POOL_KERNELS = [
  'conv2d',
  'conv2d_narrow',
  'conv2d_filter',
  'conv2d_filter_narrow',
  'sum_rows_acc',
  'batch_norm',
  'upsample_nearest_grad',
  'max_pool_grad',
  'pad_nhwc',
] as const;
export type PoolKernel = (typeof POOL_KERNELS)[number];

/** How a call is split (see the file comment). */
export interface Split {
  readonly units: number;
  readonly scale?: number;
  readonly total?: number;
  readonly start?: number;
  readonly end?: number;
  readonly counts?: readonly number[];
  readonly offsets?: readonly (readonly [arg: number, bytesPerElement: number])[];
  readonly perChunk?: readonly (readonly [arg: number, bytesPerChunk: number])[];
}

export const MAX_ARGS = 24;
const MAX_COUNTS = 4;
const MAX_OFFSETS = 6;
const MAX_PER_CHUNK = 4;

// Float64 slots of the job record.
const J_KERNEL = 0;
const J_NARGS = 1;
const J_ARGS = 2;
const J_UNITS = J_ARGS + MAX_ARGS;
const J_CHUNKS = J_UNITS + 1;
const J_SCALE = J_CHUNKS + 1;
const J_TOTAL = J_SCALE + 1;
const J_START = J_TOTAL + 1;
const J_END = J_START + 1;
const J_NCOUNTS = J_END + 1;
const J_COUNTS = J_NCOUNTS + 1;
const J_NOFFSETS = J_COUNTS + MAX_COUNTS;
const J_OFFSETS = J_NOFFSETS + 1;
const J_NPERCHUNK = J_OFFSETS + 2 * MAX_OFFSETS;
const J_PERCHUNK = J_NPERCHUNK + 1;
export const JOB_SLOTS = J_PERCHUNK + 2 * MAX_PER_CHUNK;

// Int32 slots of the control block.
/** Bumped (and notified) to wake the workers; -1 tells them to exit. */
export const C_GEN = 0;
/** The ticket word: generation << 16 | next chunk. */
export const C_TICKET = 1;
/** Chunks of the current job finished (or failed). */
export const C_DONE = 2;
/** 1 once a chunk of the current job failed; its message is in the error area. */
export const C_ERROR = 3;
/** Workers that exited. */
export const C_DEAD = 4;
/** Bytes of the error message. */
export const C_ERROR_LEN = 5;
/** Chunks the worker threads ran, over all jobs (for tests and profiles). */
export const C_WORKER_CHUNKS = 6;
export const CONTROL_INTS = 16;
/** Byte offset and size of the error message area, after the control ints. */
export const ERROR_AT = CONTROL_INTS * 4;
export const ERROR_BYTES = 1024;
/** Byte offset of the job record (float64-aligned), after the error area. */
export const JOB_AT = ERROR_AT + ERROR_BYTES;
/** Bytes of the whole shared control buffer. */
export const CONTROL_BYTES = JOB_AT + JOB_SLOTS * 8;

/** Most chunks a job may have (the ticket's low 16 bits). */
export const MAX_CHUNKS = 0xffff;

/** Views of the shared control buffer. */
export interface Control {
  readonly ints: Int32Array;
  readonly job: Float64Array;
  readonly error: Uint8Array;
}

export function controlViews(sab: SharedArrayBuffer): Control {
  return { ints: new Int32Array(sab, 0, CONTROL_INTS), job: new Float64Array(sab, JOB_AT, JOB_SLOTS), error: new Uint8Array(sab, ERROR_AT, ERROR_BYTES) };
}

/** Writes a job record (the caller then publishes it by bumping the generation). */
export function writeJob(job: Float64Array, kernel: PoolKernel, args: readonly number[], split: Split, chunks: number): void {
  const counts = split.counts ?? [];
  const offsets = split.offsets ?? [];
  const perChunk = split.perChunk ?? [];
  if (args.length > MAX_ARGS || counts.length > MAX_COUNTS || offsets.length > MAX_OFFSETS || perChunk.length > MAX_PER_CHUNK) {
    throw new RangeError(`a ${kernel} job has more arguments or split fields than the job record holds`);
  }
  job[J_KERNEL] = POOL_KERNELS.indexOf(kernel);
  job[J_NARGS] = args.length;
  for (const [i, a] of args.entries()) job[J_ARGS + i] = a;
  job[J_UNITS] = split.units;
  job[J_CHUNKS] = chunks;
  job[J_SCALE] = split.scale ?? 1;
  job[J_TOTAL] = split.total ?? split.units * (split.scale ?? 1);
  job[J_START] = split.start ?? -1;
  job[J_END] = split.end ?? -1;
  job[J_NCOUNTS] = counts.length;
  for (const [i, c] of counts.entries()) job[J_COUNTS + i] = c;
  job[J_NOFFSETS] = offsets.length;
  for (const [i, [a, b]] of offsets.entries()) {
    job[J_OFFSETS + 2 * i] = a;
    job[J_OFFSETS + 2 * i + 1] = b;
  }
  job[J_NPERCHUNK] = perChunk.length;
  for (const [i, [a, b]] of perChunk.entries()) {
    job[J_PERCHUNK + 2 * i] = a;
    job[J_PERCHUNK + 2 * i + 1] = b;
  }
}

/** A job read out of shared memory, with the argument list of each chunk. */
export class JobReader {
  readonly kernel: number;
  readonly chunks: number;
  private readonly base: number[];
  private readonly units: number;
  private readonly scale: number;
  private readonly total: number;
  private readonly start: number;
  private readonly end: number;
  private readonly counts: number[];
  private readonly offsets: number[];
  private readonly perChunk: number[];

  constructor(job: Float64Array) {
    const at = (i: number): number => job[i] as number;
    this.kernel = at(J_KERNEL);
    this.base = Array.from({ length: at(J_NARGS) }, (_, i) => at(J_ARGS + i));
    this.units = at(J_UNITS);
    this.chunks = at(J_CHUNKS);
    this.scale = at(J_SCALE);
    this.total = at(J_TOTAL);
    this.start = at(J_START);
    this.end = at(J_END);
    this.counts = Array.from({ length: at(J_NCOUNTS) }, (_, i) => at(J_COUNTS + i));
    this.offsets = Array.from({ length: 2 * at(J_NOFFSETS) }, (_, i) => at(J_OFFSETS + i));
    this.perChunk = Array.from({ length: 2 * at(J_NPERCHUNK) }, (_, i) => at(J_PERCHUNK + i));
  }

  /** The arguments of chunk `c`, or undefined when it has no elements. */
  chunkArgs(c: number): number[] | undefined {
    const u0 = Math.floor((c * this.units) / this.chunks);
    const u1 = Math.floor(((c + 1) * this.units) / this.chunks);
    const e0 = Math.min(this.total, u0 * this.scale);
    const e1 = Math.min(this.total, u1 * this.scale);
    if (e1 <= e0) return undefined;
    const a = this.base.slice();
    if (this.start >= 0) a[this.start] = e0;
    if (this.end >= 0) a[this.end] = e1;
    for (const i of this.counts) a[i] = e1 - e0;
    for (let i = 0; i < this.offsets.length; i += 2)
      a[this.offsets[i] as number] = (a[this.offsets[i] as number] as number) + e0 * (this.offsets[i + 1] as number);
    for (let i = 0; i < this.perChunk.length; i += 2)
      a[this.perChunk[i] as number] = (a[this.perChunk[i] as number] as number) + c * (this.perChunk[i + 1] as number);
    return a;
  }
}

type KernelFn = (...args: number[]) => unknown;

/** Records the first failure of a job in the error area. */
function recordError(ctl: Control, kernel: number, err: unknown): void {
  if (Atomics.compareExchange(ctl.ints, C_ERROR, 0, 1) !== 0) return;
  const name = POOL_KERNELS[kernel] ?? `kernel ${kernel}`;
  const text = new TextEncoder().encode(`${name}: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`).subarray(0, ERROR_BYTES);
  ctl.error.set(text);
  Atomics.store(ctl.ints, C_ERROR_LEN, text.length);
}

/**
 * Takes and runs chunks of job generation `gen` until none is left; a chunk
 * that throws is recorded and counted as done, so the main thread never waits
 * for it.
 */
export function takeChunks(ctl: Control, gen: number, reader: JobReader, fns: readonly KernelFn[], worker: boolean): void {
  const { ints } = ctl;
  const fn = fns[reader.kernel];
  for (;;) {
    const t = Atomics.load(ints, C_TICKET);
    if (t >>> 16 !== gen || (t & 0xffff) >= reader.chunks) return;
    if (Atomics.compareExchange(ints, C_TICKET, t, t + 1) !== t) continue;
    const c = t & 0xffff;
    if (worker) Atomics.add(ints, C_WORKER_CHUNKS, 1);
    try {
      const args = reader.chunkArgs(c);
      if (fn === undefined) throw new Error(`no kernel ${reader.kernel} in the pool's module`);
      if (args !== undefined) fn(...args);
    } catch (err) {
      recordError(ctl, reader.kernel, err);
    } finally {
      if (Atomics.add(ints, C_DONE, 1) + 1 === reader.chunks) Atomics.notify(ints, C_DONE);
    }
  }
}

/** The pool's kernels of an instance's exports, in POOL_KERNELS order. */
export function poolFns(exports: object): KernelFn[] {
  return POOL_KERNELS.map((n) => (exports as Record<string, KernelFn>)[n] as KernelFn);
}
