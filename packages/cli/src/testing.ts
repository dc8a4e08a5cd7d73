import { PassThrough } from 'node:stream';
import type { CliEnv } from './env.js';

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
