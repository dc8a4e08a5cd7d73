import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
// s3rver ships no types; the few calls used here are declared below.
import S3rverModule from 's3rver';

interface S3rverInstance {
  run(): Promise<{ address: string; port: number }>;
  close(): Promise<void>;
  /** The Node http server while listening. */
  httpServer?: { closeAllConnections?: () => void };
  /** s3rver is a Koa application: its middleware list, composed when it starts listening. */
  middleware: ((ctx: KoaContext, next: () => Promise<void>) => Promise<void>)[];
}
interface KoaContext {
  headers: Record<string, string | string[] | undefined>;
  query: Record<string, unknown>;
  status: number;
  body: unknown;
  type: string;
}
interface AwsAccountModule {
  DUMMY_ACCOUNT: { createKeyPair(accessKey: string, secretKey: string): void; revokeAccessKey(accessKey: string): void };
}
type S3rverCtor = new (opts: Record<string, unknown>) => S3rverInstance;

/** A running S3-compatible server (s3rver) on loopback, for the local default and tests. */
export interface S3Server {
  readonly endPoint: string;
  readonly port: number;
  readonly accessKey: string;
  readonly secretKey: string;
  close(): Promise<void>;
}

/**
 * Starts s3rver on 127.0.0.1 (port 0: an ephemeral port) storing objects in
 * `directory`. MinIO's server is not installable everywhere; s3rver speaks
 * the S3 calls cvc makes through the `minio` client (single-request put/get,
 * explicit multipart upload, list, stat, delete).
 */
export async function startS3Server(directory: string, port = 0, creds: { accessKey?: string; secretKey?: string } = {}): Promise<S3Server> {
  await mkdir(directory, { recursive: true });
  const accessKey = creds.accessKey ?? `cvc${randomBytes(8).toString('hex')}`;
  const secretKey = creds.secretKey ?? randomBytes(24).toString('base64url');
  // s3rver's accounts live in one process-wide registry with a well-known
  // default key pair: add ours and drop the default.
  const accounts = createRequire(import.meta.url)('s3rver/lib/models/account') as AwsAccountModule;
  accounts.DUMMY_ACCOUNT.createKeyPair(accessKey, secretKey);
  accounts.DUMMY_ACCOUNT.revokeAccessKey('S3RVER');
  const S3rver = S3rverModule as S3rverCtor;
  const server = new S3rver({ address: '127.0.0.1', port, silent: true, directory, resetOnClose: false, allowMismatchedSignatures: false });
  // s3rver lets unsigned (anonymous) requests through; MinIO does not. Refuse them first.
  server.middleware.unshift(async (ctx, next) => {
    const signed = 'authorization' in ctx.headers || 'Signature' in ctx.query || 'X-Amz-Algorithm' in ctx.query;
    if (!signed) {
      ctx.status = 403;
      ctx.type = 'application/xml';
      ctx.body = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Anonymous access is not allowed</Message></Error>';
      return;
    }
    await next();
  });
  const addr = await server.run();
  return {
    endPoint: '127.0.0.1',
    port: addr.port,
    accessKey,
    secretKey,
    // Closing also drops kept-alive connections, so a stopped server is really gone for every client.
    close: async () => {
      const closed = server.close();
      server.httpServer?.closeAllConnections?.();
      await closed;
    },
  };
}
