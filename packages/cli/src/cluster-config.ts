import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import type { ChannelCredentials, ChannelOptions } from '@grpc/grpc-js';
import { RunServiceClient, SweepServiceClient } from '@cvc/proto';
import { z } from 'zod';
import { describeIssue } from '@cvc/core';
import { clientSecurityFromEnv, grpcClientSetup, type GrpcClientSecurityOptions } from '@cvc/security';
import { storeOptionsSchema, type StoreOptions } from '@cvc/storage';
import { s3OptionsFromEnv } from './env.js';
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

const optionalText = z.string().min(1).optional();

/**
 * What a cluster.json holds (`cvc local up` writes one): the coordinator's
 * address, the object storage (the storage package's own `storeOptionsSchema`)
 * and the client's TLS settings and token. Keys it does not know are ignored,
 * so a file from a newer cvc still reads.
 */
export const clusterFileSchema = z
  .object({
    coordinator: z.string().min(1),
    natsUrl: optionalText,
    s3: storeOptionsSchema,
    security: z
      .object({
        token: optionalText,
        caFile: optionalText,
        certFile: optionalText,
        keyFile: optionalText,
        serverName: optionalText,
        insecure: z.boolean().optional(),
      })
      .strict()
      .optional(),
  })
  .loose();

/**
 * Parses and checks the text of a cluster file; malformed JSON, a missing
 * field or a wrong type is a UsageError naming the file and the field (a
 * value is never echoed: the file holds keys and tokens).
 */
export function parseClusterFile(text: string, file: string): ClusterEndpoints {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    // V8 may quote a piece of the text ("abc..." is not valid JSON): leave it out, it could be a key.
    throw new UsageError(`cluster file ${file} is not valid JSON: ${(err as Error).message.replace(/, ".*" is not valid JSON$/s, '')}`);
  }
  const r = clusterFileSchema.safeParse(json);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const field = issue && issue.path.length > 0 ? issue.path.join('.') : '(top level)';
  const value = (issue?.path ?? []).reduce<unknown>((v, k) => (v !== null && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[k] : undefined), json);
  const rule = !issue ? 'invalid' : issue.code === 'invalid_type' && value === undefined ? 'is missing' : describeIssue(issue);
  throw new UsageError(`cluster file ${file}: ${field}: ${rule}`);
}

/**
 * The cluster to talk to: `--cluster FILE` (a cluster.json written by
 * `cvc local up`), else CVC_COORDINATOR plus CVC_S3_*, CVC_TOKEN and
 * CVC_TLS_* from the environment, else the local cluster's file in .cvc/local.
 */
export async function resolveCluster(clusterFile: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<ClusterEndpoints> {
  if (!clusterFile && env['CVC_COORDINATOR'] && env['CVC_S3_ENDPOINT']) {
    return { coordinator: env['CVC_COORDINATOR'], s3: s3OptionsFromEnv(env), security: clientSecurityFromEnv(env) };
  }
  const file = clusterFile ?? join(DEFAULT_LOCAL_DIR, 'cluster.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new UsageError(`cannot read cluster file ${file}: ${(err as Error).message}`);
    throw new UsageError(
      `no cluster found: ${file} is missing. Start one with 'cvc local up', pass --cluster FILE, or set CVC_COORDINATOR, CVC_TOKEN, CVC_TLS_CA and CVC_S3_ENDPOINT/PORT/ACCESS_KEY/SECRET_KEY`,
    );
  }
  const parsed = parseClusterFile(text, file);
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

/** A SweepService client with the cluster's TLS settings and user token. */
export async function sweepServiceClient(cluster: ClusterEndpoints, options: ChannelOptions = {}): Promise<SweepServiceClient> {
  const ch = await clusterChannel(cluster);
  return new SweepServiceClient(cluster.coordinator, ch.credentials, { ...ch.options, ...options });
}
