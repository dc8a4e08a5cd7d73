import { homedir } from 'node:os';
import { join } from 'node:path';
import { resolveOptions } from '@cvc/core';
import { s3EnvSchema, storeOptionsFromEnv, type StoreOptions } from '@cvc/storage';

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

/**
 * The object-storage settings from CVC_S3_ENDPOINT, CVC_S3_PORT,
 * CVC_S3_ACCESS_KEY, CVC_S3_SECRET_KEY, CVC_S3_USE_SSL and CVC_S3_BUCKET,
 * read with the storage package's own schema (the one every service uses);
 * a missing or bad variable is a ConfigError naming it.
 */
export function s3OptionsFromEnv(env: NodeJS.ProcessEnv = process.env): StoreOptions {
  return storeOptionsFromEnv(resolveOptions(s3EnvSchema, env, 'environment'));
}
