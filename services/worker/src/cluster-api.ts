import type { Ack, AttemptRef, ClusterJobProgress, FinishClusterJobRequest, StartClusterAttemptRequest, StartClusterAttemptResponse } from '@cvc/proto';

/**
 * What a clustering attempt needs of the coordinator's ClusterWorkerService
 * (FailFold and UploadCheckpoint come from `CoordinatorApi`, with
 * `AttemptRef.jobId` set). `ClusterCoordinatorClient` implements it over
 * gRPC; unit tests hand in a fake. Failures reject with a gRPC `ServiceError`.
 */
export interface ClusterCoordinatorApi {
  /** Begins an attempt at a job; `proceed: false` when the job needs no work. */
  startClusterAttempt(req: StartClusterAttemptRequest): Promise<StartClusterAttemptResponse>;
  /** One refresh's measurements; `stop` in the answer when the job was cancelled. */
  reportClusterProgress(attempt: AttemptRef, progress: ClusterJobProgress): Promise<Ack>;
  /** The finished job's assignments and scores (after its CLUSTER_FINAL checkpoint is uploaded). */
  finishClusterJob(req: FinishClusterJobRequest): Promise<unknown>;
}
