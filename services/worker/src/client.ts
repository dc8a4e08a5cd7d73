import { status, type ChannelCredentials, type ChannelOptions, type ServiceError, type ClientUnaryCall } from '@grpc/grpc-js';
import { createHash } from 'node:crypto';
import { retry, type RetryDecision, type RetryEvent, type RetryOptions } from '@cvc/core';
import type { CheckpointKind } from '@cvc/proto';
import {
  CHECKPOINT_CHUNK_BYTES,
  MESSAGE_SIZE_OPTIONS,
  RETRY_AFTER_MS_KEY,
  WorkerServiceClient,
  type AttemptRef,
  type EpochMetrics,
  type FailFoldRequest,
  type FinishFoldRequest,
  type FoldProgress,
  type ReportBadCheckpointRequest,
  type ReportBadCheckpointResponse,
  type ReportEpochRequest,
  type ReportProgressRequest,
  type StartAttemptRequest,
  type StartAttemptResponse,
} from '@cvc/proto';
import { WorkerError } from './errors.js';
import { Metadata } from '@grpc/grpc-js';
import type { CoordinatorApi } from './coordinator-api.js';

type Unary<Req, Res> = (req: Req, cb: (err: ServiceError | null, res: Res) => void) => ClientUnaryCall;

/**
 * Codes worth retrying: the coordinator restarting or briefly unreachable
 * (UNAVAILABLE, which the coordinator also sends while NATS or S3 is down),
 * or a call deadline that ran out. UNKNOWN is not retried: grpc-js gives it
 * for answers that are not gRPC (a proxy's HTTP error page) or a handler bug,
 * neither of which a retry fixes; a lost connection is UNAVAILABLE.
 */
export const RETRYABLE_CODES: ReadonlySet<status> = new Set([status.UNAVAILABLE, status.DEADLINE_EXCEEDED]);

/** The coordinator refused the caller's token: retrying cannot help. */
export function isAuthError(err: unknown): boolean {
  const code = (err as ServiceError).code;
  return code === status.UNAUTHENTICATED || code === status.PERMISSION_DENIED;
}

/**
 * Whether a call was refused because the coordinator cancelled the run or
 * job (CANCELLED with its "... was cancelled" details), as opposed to a
 * CANCELLED that grpc-js or a proxy made of a reset stream: only the first
 * may drop the task; the second is a transient failure.
 */
export function isCoordinatorCancel(err: unknown): boolean {
  const e = err as Partial<ServiceError>;
  return e.code === status.CANCELLED && typeof e.details === 'string' && /\bwas cancelled$/.test(e.details);
}

/**
 * The worker's retry rule for a coordinator call: retry the codes in
 * `RETRYABLE_CODES` with the policy's backoff; retry RESOURCE_EXHAUSTED only
 * when the coordinator sent a retry-after hint (too many uploads at once),
 * after that hint; anything else (INVALID_ARGUMENT, FAILED_PRECONDITION for
 * a stale token, DATA_LOSS, auth) is final.
 */
export function coordinatorRetryable(err: unknown): RetryDecision {
  const e = err as Partial<ServiceError>;
  if (e.code !== undefined && RETRYABLE_CODES.has(e.code)) return true;
  if (e.code === status.RESOURCE_EXHAUSTED) {
    const hint = Number(e.metadata?.get(RETRY_AFTER_MS_KEY)[0]);
    if (Number.isFinite(hint) && hint > 0) return { retryAfterMs: hint };
  }
  return false;
}

/** What a coordinator call was for (its run and fold, or its clustering job), added to its retry events so their log lines name it. */
export interface CallSubject {
  readonly run?: string;
  readonly fold?: number;
  readonly job?: string;
}

/** The subject of a call about `attempt` (nothing when there is none). */
export function subjectOf(attempt: AttemptRef | undefined): CallSubject {
  if (!attempt) return {};
  return { run: attempt.runId, fold: attempt.fold, ...(attempt.jobId ? { job: attempt.jobId } : {}) };
}

/** @cvc/core's retry options for one call: `o` with its `onRetry` told the call's subject. */
export function retryOptionsFor(o: CoordinatorRetryOptions, subject: CallSubject): Omit<CoordinatorRetryOptions, 'onRetry'> & Pick<RetryOptions, 'onRetry'> {
  const { onRetry, ...rest } = o;
  return { ...rest, ...(onRetry ? { onRetry: (e: RetryEvent) => onRetry({ ...e, ...subject }) } : {}) };
}

/** How the worker retries coordinator calls: @cvc/core's policy, tunable per client (tests shorten it). */
export type CoordinatorRetryOptions = Pick<RetryOptions, 'deadlineMs' | 'initialDelayMs' | 'maxDelayMs' | 'signal' | 'sleep' | 'now' | 'random'> & {
  /** Called before each wait, with the call's run and fold (or job) when it has them. */
  readonly onRetry?: (event: RetryEvent & CallSubject) => void;
  /** Deadline of one try of a unary call, in ms (default 30 000). */
  readonly callDeadlineMs?: number;
  /** Least time one try of a checkpoint upload gets, in ms (default 60 000), plus 1 s per MiB of checkpoint. */
  readonly uploadDeadlineMs?: number;
};

/** Deadline of one try of a unary call to the coordinator, in ms. */
const UNARY_DEADLINE_MS = 30_000;
/** Least time one try of a checkpoint upload gets, in ms; each MiB adds UPLOAD_MS_PER_MIB (a floor of 1 MiB/s). */
const UPLOAD_DEADLINE_MS = 60_000;
const UPLOAD_MS_PER_MIB = 1000;

/** The worker's view of the coordinator, with retries across coordinator restarts. */
export class CoordinatorClient implements CoordinatorApi {
  private readonly client: WorkerServiceClient;
  private readonly retry: CoordinatorRetryOptions;

  /**
   * `setup` comes from @cvc/security's grpcClientSetup (TLS, the worker's
   * bearer token). `retry`: the total retry budget of one call in ms
   * (default 120 000, long enough to ride out a coordinator restart), or
   * retry options (backoff 200 ms growing to 5 s unless given).
   */
  constructor(address: string, setup: { credentials: ChannelCredentials; options?: ChannelOptions }, retry: number | CoordinatorRetryOptions = 120_000) {
    this.client = new WorkerServiceClient(address, setup.credentials, { ...setup.options, ...MESSAGE_SIZE_OPTIONS });
    this.retry = typeof retry === 'number' ? { deadlineMs: retry } : retry;
  }

  /**
   * Each try of a unary call has a deadline (30 s): a coordinator that hangs
   * (not one that is down, which fails at once) becomes a DEADLINE_EXCEEDED
   * that is retried, instead of a worker blocked while its heartbeat keeps the
   * task. Retries are safe: reports are idempotent per attempt, and a finished
   * fold refuses a second FinishFold as a stale token.
   */
  private callOptions(): { deadline: number } {
    return { deadline: Date.now() + (this.retry.callDeadlineMs ?? UNARY_DEADLINE_MS) };
  }

  private withRetry<T>(what: string, subject: CallSubject, fn: () => Promise<T>): Promise<T> {
    return retry(fn, {
      initialDelayMs: 200,
      maxDelayMs: 5000,
      deadlineMs: 120_000,
      ...retryOptionsFor(this.retry, subject),
      retryable: coordinatorRetryable,
      what,
    });
  }

  private call<Req, Res>(what: string, subject: CallSubject, fn: Unary<Req, Res>, req: Req): Promise<Res> {
    return this.withRetry(what, subject, () => new Promise<Res>((resolve, reject) => fn(req, (err, res) => (err ? reject(err) : resolve(res)))));
  }

  startAttempt = (req: StartAttemptRequest): Promise<StartAttemptResponse> =>
    this.call(
      'StartAttempt',
      { run: req.runId, fold: req.fold },
      (r: StartAttemptRequest, cb) => this.client.startAttempt(r, new Metadata(), this.callOptions(), cb),
      req,
    );
  reportEpoch = (attempt: AttemptRef, metrics: EpochMetrics): Promise<unknown> =>
    this.call('ReportEpoch', subjectOf(attempt), (r: ReportEpochRequest, cb) => this.client.reportEpoch(r, new Metadata(), this.callOptions(), cb), {
      attempt,
      metrics,
    });
  /**
   * One try with a 10 s deadline, no retries: progress is for display and
   * the next report (a few seconds later) supersedes a lost one.
   */
  reportProgress = (attempt: AttemptRef, progress: FoldProgress): Promise<unknown> =>
    new Promise((resolve, reject) =>
      this.client.reportProgress({ attempt, progress } satisfies ReportProgressRequest, new Metadata(), { deadline: Date.now() + 10_000 }, (err, res) =>
        err ? reject(err) : resolve(res),
      ),
    );
  finishFold = (req: FinishFoldRequest): Promise<unknown> =>
    this.call('FinishFold', subjectOf(req.attempt), (r: FinishFoldRequest, cb) => this.client.finishFold(r, new Metadata(), this.callOptions(), cb), req);
  failFold = (req: FailFoldRequest): Promise<unknown> =>
    this.call('FailFold', subjectOf(req.attempt), (r: FailFoldRequest, cb) => this.client.failFold(r, new Metadata(), this.callOptions(), cb), req);
  reportBadCheckpoint = (req: ReportBadCheckpointRequest): Promise<ReportBadCheckpointResponse> =>
    this.call(
      'ReportBadCheckpoint',
      subjectOf(req.attempt),
      (r: ReportBadCheckpointRequest, cb) => this.client.reportBadCheckpoint(r, new Metadata(), this.callOptions(), cb),
      req,
    );

  /**
   * Streams a checkpoint in `CHECKPOINT_CHUNK_BYTES` chunks, the sha256 in
   * the last message (retried as a whole). Each try has a deadline (60 s
   * plus 1 s per MiB): a coordinator whose object store stalls must not hold
   * the worker, whose heartbeat keeps the task, forever; DEADLINE_EXCEEDED
   * is retried like any try that hung.
   */
  uploadCheckpoint(attempt: AttemptRef, epoch: number, kind: CheckpointKind, bytes: Uint8Array): Promise<{ key: string; size: number }> {
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const sha256 = createHash('sha256').update(buf).digest('hex');
    const perTry = (this.retry.uploadDeadlineMs ?? UPLOAD_DEADLINE_MS) + Math.ceil(buf.length / 2 ** 20) * UPLOAD_MS_PER_MIB;
    return this.withRetry(
      'UploadCheckpoint',
      subjectOf(attempt),
      () =>
        new Promise((resolve, reject) => {
          const stream = this.client.uploadCheckpoint(new Metadata(), { deadline: Date.now() + perTry }, (err, res) => (err ? reject(err) : resolve(res)));
          stream.write({ header: { attempt, epoch, kind, size: bytes.length }, data: Buffer.alloc(0), sha256: '' });
          for (let i = 0; i < buf.length; i += CHECKPOINT_CHUNK_BYTES) stream.write({ data: buf.subarray(i, i + CHECKPOINT_CHUNK_BYTES), sha256: '' });
          stream.write({ data: Buffer.alloc(0), sha256 });
          stream.end();
        }),
    );
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
      if (isAuthError(err)) throw new WorkerError('AUTH', `the coordinator refused this worker's credentials: ${(err as ServiceError).details}`);
      // INVALID_ARGUMENT is the expected answer (authenticated). Anything else (the
      // coordinator unreachable past the retry budget) says nothing about the
      // credentials: the pull loop meets it again, per task, with its own retries.
    }
  }

  close(): void {
    this.client.close();
  }
}
