import type {
  AttemptRef,
  CheckpointKind,
  EpochMetrics,
  FailFoldRequest,
  FinishFoldRequest,
  FoldProgress,
  ReportBadCheckpointRequest,
  ReportBadCheckpointResponse,
  StartAttemptRequest,
  StartAttemptResponse,
} from '@cvc/proto';

/**
 * What the worker loop needs of the coordinator's WorkerService.
 * `CoordinatorClient` implements it over gRPC (with retries across
 * coordinator restarts); unit tests hand in a fake. Failures reject with a
 * gRPC `ServiceError` (its `code` decides what the worker does: CANCELLED,
 * UNAUTHENTICATED / PERMISSION_DENIED, FAILED_PRECONDITION for a stale
 * attempt token, anything else fails the attempt).
 */
export interface CoordinatorApi {
  /** Begins an attempt at a fold; `proceed: false` when the fold or run needs no training. */
  startAttempt(req: StartAttemptRequest): Promise<StartAttemptResponse>;
  /** Records a finished epoch of the attempt. */
  reportEpoch(attempt: AttemptRef, metrics: EpochMetrics): Promise<unknown>;
  /** Progress inside the current epoch; a single try, superseded by the next report. */
  reportProgress(attempt: AttemptRef, progress: FoldProgress): Promise<unknown>;
  /** Stores a checkpoint (an epoch's, or the fold's best). */
  uploadCheckpoint(attempt: AttemptRef, epoch: number, kind: CheckpointKind, bytes: Uint8Array): Promise<{ key: string; size: number }>;
  /** Records the fold's final metrics; an Ack with `stop` says they were not recorded (the run was stopped early). */
  finishFold(req: FinishFoldRequest): Promise<unknown>;
  /** Records a failed attempt; `final` when no delivery of the task is left. */
  failFold(req: FailFoldRequest): Promise<unknown>;
  /** The resume checkpoint cannot be used: answers the one to fall back to (empty: start fresh). */
  reportBadCheckpoint(req: ReportBadCheckpointRequest): Promise<ReportBadCheckpointResponse>;
}
