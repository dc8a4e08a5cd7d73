/**
 * `@cvc/cli/testing`: the test harness of the CLI, not part of its public
 * API (and not in its npm tarball): captured stdout/stderr and the local
 * cluster with its fault hooks (restart or stop nats-server, S3 and the
 * coordinator, extra workers, the generated credentials).
 */
import { PassThrough } from 'node:stream';
import type { CliEnv } from './env.js';

export { startLocalCluster, type LocalCluster, type LocalClusterOptions, type LocalCredentials } from './local-cluster.js';
export { acquireLocalLock, pidAlive, LocalLockError, LOCK_FILE, type LocalLock, type LockOwner } from './local-lock.js';

/** A CliEnv whose stdout and stderr are captured (for tests). */
export function captureEnv(cacheDir: string, dataDirs: readonly string[] = []): CliEnv & { out(): string; err(): string } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let o = '';
  let e = '';
  stdout.on('data', (c: Buffer) => (o += c.toString()));
  stderr.on('data', (c: Buffer) => (e += c.toString()));
  return { cacheDir, dataDirs, stdout, stderr, out: () => o, err: () => e };
}
