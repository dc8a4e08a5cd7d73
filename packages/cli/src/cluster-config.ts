import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import type { ChannelCredentials, ChannelOptions } from '@grpc/grpc-js';
import { RunServiceClient } from '@cvc/proto';
import { clientSecurityFromEnv, grpcClientSetup, type GrpcClientSecurityOptions } from '@cvc/security';
import type { StoreOptions } from '@cvc/storage';
import { UsageError } from './errors.js';

/** Where a cluster's coordinator and object storage are, and the credentials to use them. */
export interface ClusterEndpoints {
  readonly coordinator: string;
  readonly natsUrl?: string;
  readonly s3: StoreOptions;
  /** The user's bearer token and TLS settings for the coordinator (file paths relative to the cluster file). */
  readonly security?: GrpcClientSecurityOptions;
}

export const DEFAULT_LOCAL_DIR = '.cvc/local';

/**
 * The cluster to talk to: `--cluster FILE` (a cluster.json written by
 * `cvc local up`), else CVC_COORDINATOR plus CVC_S3_*, CVC_TOKEN and
 * CVC_TLS_* from the environment, else the local cluster's file in .cvc/local.
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
      security: clientSecurityFromEnv(env),
    };
  }
  const file = clusterFile ?? join(DEFAULT_LOCAL_DIR, 'cluster.json');
  let parsed: ClusterEndpoints;
  try {
    parsed = JSON.parse(await readFile(file, 'utf8')) as ClusterEndpoints;
  } catch {
    throw new UsageError(`no cluster found: ${file} is missing. Start one with 'cvc local up', pass --cluster FILE, or set CVC_COORDINATOR, CVC_TOKEN, CVC_TLS_CA and CVC_S3_ENDPOINT/PORT/ACCESS_KEY/SECRET_KEY`);
  }
  const s = parsed.security;
  if (!s) return parsed;
  const rel = (p: string | undefined): string | undefined => (p === undefined || isAbsolute(p) ? p : resolve(dirname(file), p));
  // CVC_TOKEN in the environment overrides the file's token.
  return { ...parsed, security: { ...s, caFile: rel(s.caFile), certFile: rel(s.certFile), keyFile: rel(s.keyFile), token: env['CVC_TOKEN'] ?? s.token } };
}

/** Credentials and options for a gRPC client of `cluster`'s coordinator. */
export function clusterChannel(cluster: ClusterEndpoints): Promise<{ credentials: ChannelCredentials; options: ChannelOptions }> {
  return grpcClientSetup(cluster.security ?? { insecure: true });
}

/** A RunService client with the cluster's TLS settings and user token. */
export async function runServiceClient(cluster: ClusterEndpoints, options: ChannelOptions = {}): Promise<RunServiceClient> {
  const ch = await clusterChannel(cluster);
  return new RunServiceClient(cluster.coordinator, ch.credentials, { ...ch.options, ...options });
}
