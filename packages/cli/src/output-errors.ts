/** The exit code of a command whose stdout or stderr reader went away: 128 + SIGPIPE, as a Unix tool killed by it. */
export const EXIT_OUTPUT_CLOSED = 141;

/** What main() learns from {@link watchOutputClosed}. */
export interface OutputWatch {
  /** Whether a write to stdout or stderr failed (EPIPE: `cvc run list | head -1`). */
  readonly closed: boolean;
  /** The exit code to return: 141 for a command that ended well or was stopped because of it, else its own. */
  exitCode(code: number): number;
  /**
   * Waits until what was written has reached the streams (a pipe's write
   * fails only then, after the command returned) and notes a failure.
   */
  settle(): Promise<void>;
  /** Stops watching; a write error still pending on the streams is swallowed from then on, never a crash. */
  release(): void;
}

const guarded = new WeakSet<object>();

/** An error a closed pipe or terminal gives a writer. */
function isClosedOutput(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'EPIPE' || code === 'ERR_STREAM_DESTROYED' || code === 'EIO' || code === 'ECONNRESET';
}

/** How often {@link watchOutputClosed} tries an empty write on each stream (ms). */
export const OUTPUT_PROBE_MS = 1000;

/**
 * Listens for write errors on `streams` (stdout and stderr). Node emits a
 * failed write (EPIPE once the reader of a pipe exits) as an 'error' event,
 * which without a listener kills the process with a raw stack; instead the
 * first one (or a 'close' of the stream) calls `onClosed` (main aborts the
 * command's signal, so a watch stops instead of writing on) and is remembered.
 *
 * Nothing tells a writer that its reader went away before it writes, and a
 * watch of a run that does not change writes nothing for hours: every
 * `probeMs` an empty write to each stream finds out while the command only
 * waits. That catches a socket (the stdio of a process started by Node or a
 * supervisor is a socketpair), but an empty write into a kernel pipe
 * (`cvc run watch R | head`) succeeds whatever the reader did, so there the
 * command still learns it at its next real write.
 */
export function watchOutputClosed(streams: readonly NodeJS.WritableStream[], onClosed: () => void, probeMs = OUTPUT_PROBE_MS): OutputWatch {
  let closed = false;
  const probe = setInterval(() => {
    for (const s of streams) s.write('', (err?: Error | null) => (err ? onError() : undefined));
  }, probeMs);
  // The probe alone never keeps the process alive.
  probe.unref();
  // Any write error (also ENOSPC on a redirected file) means the output is lost: the same stop.
  const onError = (): void => {
    if (closed) return;
    closed = true;
    clearInterval(probe);
    onClosed();
  };
  for (const s of streams) {
    s.on('error', onError);
    s.on('close', onError);
  }
  // An empty write's callback runs after every earlier write finished: with an error when one failed.
  const flush = (s: NodeJS.WritableStream): Promise<boolean> =>
    new Promise((resolve) => s.write('', (err?: Error | null) => resolve(err !== undefined && err !== null)));
  return {
    get closed() {
      return closed;
    },
    async settle() {
      const failed = await Promise.all(streams.map(flush));
      if (failed.some(Boolean)) closed = true;
    },
    exitCode: (code) => (code === 0 || code === 130 ? EXIT_OUTPUT_CLOSED : code),
    release() {
      clearInterval(probe);
      for (const s of streams) {
        s.off('error', onError);
        s.off('close', onError);
        // Once per stream: later errors of a stream that already failed are not news (nobody reads it).
        if (!guarded.has(s)) {
          guarded.add(s);
          s.on('error', (err: unknown) => {
            if (!isClosedOutput(err)) throw err;
          });
        }
      }
    },
  };
}

/** Human words for the errno codes a file or socket operation of the CLI meets most. */
const REASONS: Readonly<Record<string, string>> = {
  ENOENT: 'no such file or directory',
  ENOTDIR: 'a part of the path is a file, not a directory',
  EEXIST: 'it exists and is not a directory',
  EISDIR: 'it is a directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EMFILE: 'too many open files',
  ENAMETOOLONG: 'the name is too long',
  ELOOP: 'too many symbolic links',
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ETIMEDOUT: 'timed out',
  ENOTFOUND: 'host not found',
};

/**
 * The message for a Node system error (an errno `code` with the `syscall`
 * and path that failed): `cannot mkdir /tmp/x/out: a part of the path is a
 * file, not a directory (ENOTDIR)`; undefined for any other error.
 */
export function systemErrorMessage(err: unknown): string | undefined {
  if (!(err instanceof Error)) return undefined;
  const e = err as NodeJS.ErrnoException & { dest?: string; address?: string; port?: number; hostname?: string };
  if (typeof e.code !== 'string' || !/^E[A-Z0-9]+$/.test(e.code) || typeof e.syscall !== 'string') return undefined;
  const what =
    e.path !== undefined
      ? `${e.path}${e.dest !== undefined ? ` -> ${e.dest}` : ''}`
      : e.address !== undefined
        ? `${e.address}${e.port !== undefined ? `:${e.port}` : ''}`
        : (e.hostname ?? '');
  const op = e.syscall === 'open' ? 'open' : e.syscall.replace(/^(uv_|fs\.)/, '');
  return `cannot ${op}${what ? ` ${what}` : ''}: ${REASONS[e.code] ?? e.message.replace(/^[A-Z0-9]+: /, '').replace(/,.*$/, '')} (${e.code})`;
}
