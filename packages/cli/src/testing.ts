/**
 * `@cvc/cli/testing`: the test harness of the CLI, not part of its public
 * API (and not in its npm tarball): captured stdout/stderr and the local
 * cluster with its fault hooks (restart or stop nats-server, S3 and the
 * coordinator, extra workers, the generated credentials).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { Server, ServerCredentials } from '@grpc/grpc-js';
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

/**
 * A fake coordinator for CLI tests: an insecure gRPC server on loopback with
 * the services `add` puts on it, and DIR/cluster.json pointing at it (for
 * `--cluster FILE`; S3 points nowhere).
 */
export async function fakeCoordinatorFile(dir: string, add: (server: Server) => void): Promise<{ file: string; close: () => void }> {
  const server = new Server();
  add(server);
  const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  const file = join(dir, 'cluster.json');
  await writeFile(
    file,
    JSON.stringify({
      coordinator: `127.0.0.1:${port}`,
      s3: { endPoint: '127.0.0.1', port: 1, accessKey: 'a', secretKey: 'b', bucket: 'cvc' },
      security: { insecure: true },
    }),
  );
  return { file, close: () => server.forceShutdown() };
}
