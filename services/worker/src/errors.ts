import { CvcError } from '@cvc/core';

/**
 * Why the worker stopped or an attempt failed on the worker's side:
 * `AUTH`: the coordinator refused this worker's credentials;
 * `FAULT_INJECTED`: a test-only fault (CVC_FAULT_FAIL_FOLD);
 * `NO_SPEC`: the coordinator started an attempt without a run spec (or a clustering job without a resolved spec);
 * `BAD_CHECKPOINT`: the coordinator offered a resume checkpoint again after this attempt reported it unusable.
 */
export type WorkerErrorCode = 'AUTH' | 'FAULT_INJECTED' | 'NO_SPEC' | 'BAD_CHECKPOINT';

/** A worker-side failure with a closed code. */
export class WorkerError extends CvcError<WorkerErrorCode> {}
