import { mkdir } from 'node:fs/promises';
// s3rver ships no types; the few calls used here are declared below.
import S3rverModule from 's3rver';

interface S3rverInstance {
  run(): Promise<{ address: string; port: number }>;
  close(): Promise<void>;
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
export async function startS3Server(directory: string, port = 0): Promise<S3Server> {
  await mkdir(directory, { recursive: true });
  const S3rver = S3rverModule as S3rverCtor;
  const server = new S3rver({ address: '127.0.0.1', port, silent: true, directory, resetOnClose: false, allowMismatchedSignatures: false });
  const addr = await server.run();
  return { endPoint: '127.0.0.1', port: addr.port, accessKey: 'S3RVER', secretKey: 'S3RVER', close: () => server.close() };
}
