import { homedir } from 'node:os';
import { join } from 'node:path';

/** Where cvc keeps downloaded datasets and which extra data directories it searches. */
export interface CliEnv {
  readonly cacheDir: string;
  readonly dataDirs: readonly string[];
  readonly stdout: NodeJS.WritableStream & { isTTY?: boolean };
  readonly stderr: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
}

/** Reads CVC_CACHE_DIR (default ~/.cache/cvc/datasets) and CVC_DATA_DIR (colon-separated). */
export function cliEnvFromProcess(env: NodeJS.ProcessEnv = process.env): CliEnv {
  const cacheDir = env['CVC_CACHE_DIR'] ?? join(env['XDG_CACHE_HOME'] ?? join(homedir(), '.cache'), 'cvc', 'datasets');
  const dataDirs = (env['CVC_DATA_DIR'] ?? '').split(':').filter((d) => d.length > 0);
  return { cacheDir, dataDirs, stdout: process.stdout, stderr: process.stderr };
}
