import { Metadata, type ChannelCredentials, type ChannelOptions, type ServiceError } from '@grpc/grpc-js';
import { retry } from '@cvc/core';
import {
  ClusterWorkerServiceClient,
  MESSAGE_SIZE_OPTIONS,
  type Ack,
  type AttemptRef,
  type ClusterJobProgress,
  type FinishClusterJobRequest,
  type StartClusterAttemptRequest,
  type StartClusterAttemptResponse,
} from '@cvc/proto';
import type { ClusterCoordinatorApi } from './cluster-api.js';
import { coordinatorRetryable, retryOptionsFor, subjectOf, type CallSubject, type CoordinatorRetryOptions } from './client.js';

/** Deadline of one try of a unary call, in ms (FinishClusterJob carries one assignment per record). */
const UNARY_DEADLINE_MS = 60_000;

/**
 * The worker's view of the coordinator's ClusterWorkerService, with the
 * same retries as `CoordinatorClient` (UNAVAILABLE and DEADLINE_EXCEEDED
 * across a coordinator restart; reports are idempotent per attempt).
 */
export class ClusterCoordinatorClient implements ClusterCoordinatorApi {
  private readonly client: ClusterWorkerServiceClient;
  private readonly retry: CoordinatorRetryOptions;

  constructor(address: string, setup: { credentials: ChannelCredentials; options?: ChannelOptions }, retry: number | CoordinatorRetryOptions = 120_000) {
    this.client = new ClusterWorkerServiceClient(address, setup.credentials, { ...setup.options, ...MESSAGE_SIZE_OPTIONS });
    this.retry = typeof retry === 'number' ? { deadlineMs: retry } : retry;
  }

  private call<Req, Res>(
    what: string,
    subject: CallSubject,
    fn: (req: Req, md: Metadata, o: { deadline: number }, cb: (err: ServiceError | null, res: Res) => void) => unknown,
    req: Req,
  ): Promise<Res> {
    return retry(
      () =>
        new Promise<Res>((resolve, reject) =>
          fn(req, new Metadata(), { deadline: Date.now() + (this.retry.callDeadlineMs ?? UNARY_DEADLINE_MS) }, (err, res) =>
            err ? reject(err) : resolve(res),
          ),
        ),
      { initialDelayMs: 200, maxDelayMs: 5000, deadlineMs: 120_000, ...retryOptionsFor(this.retry, subject), retryable: coordinatorRetryable, what },
    );
  }

  startClusterAttempt = (req: StartClusterAttemptRequest): Promise<StartClusterAttemptResponse> =>
    this.call('StartClusterAttempt', { job: req.jobId }, (r: StartClusterAttemptRequest, md, o, cb) => this.client.startClusterAttempt(r, md, o, cb), req);
  reportClusterProgress = (attempt: AttemptRef, progress: ClusterJobProgress): Promise<Ack> =>
    this.call(
      'ReportClusterProgress',
      subjectOf(attempt),
      (r: { attempt: AttemptRef; progress: ClusterJobProgress }, md, o, cb) => this.client.reportClusterProgress(r, md, o, cb),
      {
        attempt,
        progress,
      },
    );
  finishClusterJob = (req: FinishClusterJobRequest): Promise<unknown> =>
    this.call('FinishClusterJob', subjectOf(req.attempt), (r: FinishClusterJobRequest, md, o, cb) => this.client.finishClusterJob(r, md, o, cb), req);

  close(): void {
    this.client.close();
  }
}
