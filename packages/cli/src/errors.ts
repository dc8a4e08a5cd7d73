import { status, type ServiceError } from '@grpc/grpc-js';
import { CvcError } from '@cvc/core';

/** Wrong command-line usage: exit code 2. */
export class UsageError extends CvcError<'USAGE'> {
  constructor(message: string) {
    super('USAGE', message);
  }
}

/** A gRPC status name as the CLI reports it, e.g. `GRPC_NOT_FOUND`. */
export type GrpcCodeName = `GRPC_${Exclude<keyof typeof status, number>}`;

/**
 * Why a call to the cluster failed: the coordinator's gRPC status
 * (`GRPC_<NAME>`), or a check the CLI made on what came back.
 */
export type RemoteErrorCode = GrpcCodeName | 'NO_EVENTS' | 'NO_FOLDS' | 'NO_TEST_SPLIT' | 'NOT_FINISHED' | 'CHECKSUM';

/** A gRPC failure or a bad answer from the cluster, as the CLI reports it (exit code 1, the server's message). */
export class RemoteError extends CvcError<RemoteErrorCode> {}

/** The RemoteError for a failed gRPC call: its status by name, and the server's message. */
export function remoteError(e: ServiceError): RemoteError {
  const name = status[e.code] as Exclude<keyof typeof status, number> | undefined;
  return new RemoteError(name === undefined ? 'GRPC_UNKNOWN' : `GRPC_${name}`, e.details || e.message, { cause: e });
}

/** `cvc local up` could not start or reach one of its processes. */
export class LocalClusterError extends CvcError<
  'COORDINATOR_START' | 'S3_STOPPED' | 'CREDENTIALS_UNREADABLE' | 'NATS_START' | 'NATS_CLUSTERED' | 'SERVICE_NOT_INSTALLED'
> {}

/**
 * Why `--copy-to` or `--out` refused to write: the target is not empty
 * (without --force), lies inside the image folder, a destination exists and
 * is not one cvc wrote, or a record's path would leave the target.
 */
export class OutputError extends CvcError<'TARGET_NOT_EMPTY' | 'TARGET_NOT_DIRECTORY' | 'TARGET_INSIDE_SOURCE' | 'DEST_EXISTS' | 'BAD_PATH'> {}
