import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { StoreOptions } from '@cvc/storage';
import { UsageError } from './errors.js';

/** Where a cluster's coordinator and object storage are. */
export interface ClusterEndpoints {
  readonly coordinator: string;
  readonly natsUrl?: string;
  readonly s3: StoreOptions;
}

export const DEFAULT_LOCAL_DIR = '.cvc/local';

/**
 * The cluster to talk to: `--cluster FILE` (a cluster.json written by
 * `cvc local up`), else CVC_COORDINATOR plus CVC_S3_* from the environment,
 * else the local cluster's file in .cvc/local.
 */
export async function resolveCluster(clusterFile: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<ClusterEndpoints> {
  if (!clusterFile && env['CVC_COORDINATOR'] && env['CVC_S3_ENDPOINT']) {
    return {
      coordinator: env['CVC_COORDINATOR'],
      s3: {
        endPoint: env['CVC_S3_ENDPOINT'],
        port: Number(env['CVC_S3_PORT'] ?? 9000),
        useSSL: env['CVC_S3_USE_SSL'] === 'true',
        accessKey: env['CVC_S3_ACCESS_KEY'] ?? '',
        secretKey: env['CVC_S3_SECRET_KEY'] ?? '',
        bucket: env['CVC_S3_BUCKET'] ?? 'cvc',
      },
    };
  }
  const file = clusterFile ?? join(DEFAULT_LOCAL_DIR, 'cluster.json');
  try {
    return JSON.parse(await readFile(file, 'utf8')) as ClusterEndpoints;
  } catch {
    throw new UsageError(`no cluster found: ${file} is missing. Start one with 'cvc local up', pass --cluster FILE, or set CVC_COORDINATOR and CVC_S3_ENDPOINT/PORT/ACCESS_KEY/SECRET_KEY`);
  }
}
