import { credentials, InterceptingCall, ServerCredentials, type ChannelCredentials, type ChannelOptions, type Interceptor } from '@grpc/grpc-js';
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { ConfigError, resolveOptions } from '@cvc/core';
import { createTokenAuthenticator, parseTokens, type Authenticator } from './tokens.js';

const flag = z.enum(['true', 'false']).default('false');

async function pem(file: string, setting: string): Promise<Buffer> {
  let b: Buffer;
  try {
    b = await readFile(file);
  } catch (err) {
    throw new ConfigError(setting, `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (!b.includes('-----BEGIN ')) throw new ConfigError(setting, `${file} is not a PEM file`);
  return b;
}

/** The coordinator's transport and authentication settings (from the environment or a Kubernetes Secret). */
export const grpcServerSecurityEnvSchema = z.object({
  /** PEM server certificate (chain) and its private key. */
  CVC_TLS_CERT: z.string().optional(),
  CVC_TLS_KEY: z.string().optional(),
  /** PEM CA bundle: when set, clients must present a certificate it signed (mutual TLS). */
  CVC_TLS_CLIENT_CA: z.string().optional(),
  /** Comma-separated bearer tokens of users (submit, watch, cancel, download) and of workers (training calls). */
  CVC_USER_TOKENS: z.string().optional(),
  CVC_WORKER_TOKENS: z.string().optional(),
  /** true: plaintext gRPC and, when no tokens are set, no authentication. For development only. */
  CVC_INSECURE: flag,
});
export type GrpcServerSecurityEnv = z.output<typeof grpcServerSecurityEnvSchema>;

export interface GrpcServerSecurity {
  readonly credentials: ServerCredentials;
  /** Undefined only in insecure mode without tokens. */
  readonly auth: Authenticator | undefined;
  readonly tls: boolean;
  readonly mutualTls: boolean;
  /** Token values, for log redaction. */
  readonly secrets: readonly string[];
}

/**
 * TLS credentials and the token authenticator for the coordinator. Unless
 * CVC_INSECURE=true, a certificate, a key and both token lists are required,
 * and the error names whichever is missing.
 */
export async function grpcServerSecurity(cfg: GrpcServerSecurityEnv): Promise<GrpcServerSecurity> {
  const insecure = cfg.CVC_INSECURE === 'true';
  const userTokens = parseTokens(cfg.CVC_USER_TOKENS, 'CVC_USER_TOKENS');
  const workerTokens = parseTokens(cfg.CVC_WORKER_TOKENS, 'CVC_WORKER_TOKENS');
  const secrets = [...userTokens, ...workerTokens];
  if (insecure) {
    const auth = userTokens.length > 0 || workerTokens.length > 0 ? createTokenAuthenticator({ userTokens, workerTokens }) : undefined;
    return { credentials: ServerCredentials.createInsecure(), auth, tls: false, mutualTls: false, secrets };
  }
  const missing = (['CVC_TLS_CERT', 'CVC_TLS_KEY', 'CVC_USER_TOKENS', 'CVC_WORKER_TOKENS'] as const).filter((k) => !cfg[k]);
  if (missing.length > 0) {
    throw new ConfigError(
      missing.join(', '),
      'required (TLS certificate and key files, user and worker tokens); set CVC_INSECURE=true only for a development setup without them',
    );
  }
  const cert = await pem(cfg.CVC_TLS_CERT ?? '', 'CVC_TLS_CERT');
  const key = await pem(cfg.CVC_TLS_KEY ?? '', 'CVC_TLS_KEY');
  const clientCa = cfg.CVC_TLS_CLIENT_CA ? await pem(cfg.CVC_TLS_CLIENT_CA, 'CVC_TLS_CLIENT_CA') : null;
  let creds: ServerCredentials;
  try {
    creds = ServerCredentials.createSsl(clientCa, [{ cert_chain: cert, private_key: key }], clientCa !== null);
  } catch (err) {
    throw new ConfigError('CVC_TLS_CERT', `unusable certificate or key: ${(err as Error).message}`);
  }
  return { credentials: creds, auth: createTokenAuthenticator({ userTokens, workerTokens }), tls: true, mutualTls: clientCa !== null, secrets };
}

/** A client's settings: its token and how to reach the coordinator over TLS. */
export const grpcClientSecurityEnvSchema = z.object({
  /** This client's bearer token (a user token for the CLI, a worker token for workers). */
  CVC_TOKEN: z.string().optional(),
  /** PEM CA bundle that signed the coordinator's certificate (default: the system's roots). */
  CVC_TLS_CA: z.string().optional(),
  /** This client's certificate and key, for mutual TLS. */
  CVC_TLS_CERT: z.string().optional(),
  CVC_TLS_KEY: z.string().optional(),
  /** Name to verify in the coordinator's certificate when it differs from the address's host. */
  CVC_TLS_SERVER_NAME: z.string().optional(),
  CVC_INSECURE: flag,
});
export type GrpcClientSecurityEnv = z.output<typeof grpcClientSecurityEnvSchema>;

/** Plain settings for a gRPC client, as read from the environment or a cluster file. */
export interface GrpcClientSecurityOptions {
  readonly token?: string | undefined;
  readonly caFile?: string | undefined;
  readonly certFile?: string | undefined;
  readonly keyFile?: string | undefined;
  readonly serverName?: string | undefined;
  readonly insecure?: boolean | undefined;
}

export function clientSecurityFromEnv(env: NodeJS.ProcessEnv | GrpcClientSecurityEnv): GrpcClientSecurityOptions {
  const cfg = resolveOptions(grpcClientSecurityEnvSchema, env, 'environment');
  return {
    token: cfg.CVC_TOKEN,
    caFile: cfg.CVC_TLS_CA,
    certFile: cfg.CVC_TLS_CERT,
    keyFile: cfg.CVC_TLS_KEY,
    serverName: cfg.CVC_TLS_SERVER_NAME,
    insecure: cfg.CVC_INSECURE === 'true',
  };
}

/** Adds `authorization: Bearer TOKEN` to every call. */
export function bearerInterceptor(token: string): Interceptor {
  return (options, nextCall) =>
    new InterceptingCall(nextCall(options), {
      start: (metadata, listener, next) => {
        metadata.set('authorization', `Bearer ${token}`);
        next(metadata, listener);
      },
    });
}

/** Channel credentials and options (the token interceptor, a server-name override) for a generated client. */
export async function grpcClientSetup(o: GrpcClientSecurityOptions): Promise<{ credentials: ChannelCredentials; options: ChannelOptions }> {
  const options: ChannelOptions = {};
  if (o.token) options['interceptors'] = [bearerInterceptor(o.token)];
  if (o.insecure) return { credentials: credentials.createInsecure(), options };
  if ((o.certFile === undefined) !== (o.keyFile === undefined))
    throw new ConfigError('CVC_TLS_CERT', 'a client certificate needs its key (CVC_TLS_KEY) and the other way round');
  const ca = o.caFile ? await pem(o.caFile, 'CVC_TLS_CA') : null;
  const cert = o.certFile ? await pem(o.certFile, 'CVC_TLS_CERT') : null;
  const key = o.keyFile ? await pem(o.keyFile, 'CVC_TLS_KEY') : null;
  if (o.serverName) {
    options['grpc.ssl_target_name_override'] = o.serverName;
    options['grpc.default_authority'] = o.serverName;
  }
  return { credentials: credentials.createSsl(ca, key, cert), options };
}
