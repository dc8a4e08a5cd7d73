import { status, type ChannelCredentials, type ChannelOptions, type ServiceError, type ClientUnaryCall } from '@grpc/grpc-js';
import { createHash } from 'node:crypto';
import { CvcError } from '@cvc/core';
import type { CheckpointKind} from '@cvc/proto';
import { WorkerServiceClient, type AttemptRef, type EpochMetrics, type FailFoldRequest, type FinishFoldRequest, type ReportEpochRequest, type StartAttemptRequest, type StartAttemptResponse } from '@cvc/proto';
import { Metadata } from '@grpc/grpc-js';
import type { FoldProgress } from '@cvc/proto';
import type { CoordinatorApi } from './coordinator-api.js';

type Unary<Req, Res> = (req: Req, cb: (err: ServiceError | null, res: Res) => void) => ClientUnaryCall;

/** Codes worth retrying: the coordinator restarting or briefly unreachable. */
const RETRYABLE = new Set([status.UNAVAILABLE, status.DEADLINE_EXCEEDED, status.UNKNOWN]);

/** The coordinator refused the caller's token: retrying cannot help. */
export function isAuthError(err: unknown): boolean {
  const code = (err as ServiceError).code;
  return code === status.UNAUTHENTICATED || code === status.PERMISSION_DENIED;
}

/** Trailing metadata the coordinator sets on a RESOURCE_EXHAUSTED worth retrying (too many uploads at once). */
const RETRY_AFTER_MS = 'cvc-retry-after-ms';

/** How long to wait before retrying `err`, or undefined when it is not worth retrying. */
function retryDelay(err: unknown, backoff: number): number | undefined {
  const e = err as ServiceError;
  if (RETRYABLE.has(e.code)) return backoff;
  if (e.code === status.RESOURCE_EXHAUSTED) {
    const hint = Number(e.metadata?.get(RETRY_AFTER_MS)[0]);
    if (Number.isFinite(hint) && hint > 0) return Math.max(hint, backoff / 4);
  }
  return undefined;
}

/** The worker's view of the coordinator, with retries across coordinator restarts. */
export class CoordinatorClient implements CoordinatorApi {
  private readonly client: WorkerServiceClient;

  /** `setup` comes from @cvc/security's grpcClientSetup (TLS, the worker's bearer token). */
  constructor(
    address: string,
    setup: { credentials: ChannelCredentials; options?: ChannelOptions },
    private readonly retryForMs = 120_000,
  ) {
    this.client = new WorkerServiceClient(address, setup.credentials, {
      ...setup.options,
      'grpc.max_send_message_length': 4 * 1024 * 1024,
      'grpc.max_receive_message_length': 4 * 1024 * 1024,
    });
  }

  private async call<Req, Res>(fn: Unary<Req, Res>, req: Req): Promise<Res> {
    const until = Date.now() + this.retryForMs;
    let delay = 200;
    for (;;) {
      try {
        return await new Promise<Res>((resolve, reject) => fn(req, (err, res) => (err ? reject(err) : resolve(res))));
      } catch (err) {
        const wait = retryDelay(err, delay);
        if (wait === undefined || Date.now() + wait > until) throw err;
        await new Promise((r) => setTimeout(r, wait));
        delay = Math.min(delay * 2, 5000);
      }
    }
  }

  startAttempt = (req: StartAttemptRequest): Promise<StartAttemptResponse> => this.call((r: StartAttemptRequest, cb) => this.client.startAttempt(r, cb), req);
  reportEpoch = (attempt: AttemptRef, metrics: EpochMetrics): Promise<unknown> => this.call((r: ReportEpochRequest, cb) => this.client.reportEpoch(r, cb), { attempt, metrics });
  finishFold = (req: FinishFoldRequest): Promise<unknown> => this.call((r: FinishFoldRequest, cb) => this.client.finishFold(r, cb), req);
  failFold = (req: FailFoldRequest): Promise<unknown> => this.call((r: FailFoldRequest, cb) => this.client.failFold(r, cb), req);

  /**
   * One try with a 10 s deadline, no retries: progress is for display and
   * the next report (a few seconds later) supersedes a lost one.
   */
  reportProgress = (attempt: AttemptRef, progress: FoldProgress): Promise<unknown> =>
    new Promise((resolve, reject) => this.client.reportProgress({ attempt, progress }, new Metadata(), { deadline: Date.now() + 10_000 }, (err, res) => (err ? reject(err) : resolve(res))));

  /** Streams a checkpoint in 1 MiB chunks, the sha256 in the last message (retried as a whole). */
  async uploadCheckpoint(attempt: AttemptRef, epoch: number, kind: CheckpointKind, bytes: Uint8Array): Promise<{ key: string; size: number }> {
    const until = Date.now() + this.retryForMs;
    let delay = 200;
    for (;;) {
      try {
        return await new Promise((resolve, reject) => {
          const stream = this.client.uploadCheckpoint((err, res) => (err ? reject(err) : resolve(res)));
          const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
          stream.write({ header: { attempt, epoch, kind, size: bytes.length }, data: Buffer.alloc(0), sha256: '' });
          for (let i = 0; i < buf.length; i += 1 << 20) stream.write({ data: buf.subarray(i, i + (1 << 20)), sha256: '' });
          stream.write({ data: Buffer.alloc(0), sha256: createHash('sha256').update(buf).digest('hex') });
          stream.end();
        });
      } catch (err) {
        const wait = retryDelay(err, delay);
        if (wait === undefined || Date.now() + wait > until) throw err;
        await new Promise((r) => setTimeout(r, wait));
        delay = Math.min(delay * 2, 5000);
      }
    }
  }

  /**
   * Checks that the coordinator accepts this worker's token before any task
   * is pulled, so a misconfigured worker fails at start instead of failing
   * folds: a StartAttempt for no run is refused as INVALID_ARGUMENT once
   * authenticated, or as UNAUTHENTICATED / PERMISSION_DENIED before that.
   */
  async verifyAccess(worker: string): Promise<void> {
    try {
      await this.startAttempt({ runId: '', fold: 0, worker, delivery: 0 });
    } catch (err) {
      if (isAuthError(err)) throw new CvcError('AUTH', `the coordinator refused this worker's credentials: ${(err as ServiceError).details}`);
    }
  }

  close(): void {
    this.client.close();
  }
}
