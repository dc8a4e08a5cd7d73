import { CvcError } from '@cvc/core';

/** gRPC-independent outcome classes; the server maps them to status codes. */
export type Outcome =
  | 'NOT_FOUND'
  | 'INVALID_ARGUMENT'
  | 'FAILED_PRECONDITION'
  | 'RESOURCE_EXHAUSTED'
  | 'CANCELLED'
  | 'DATA_LOSS'
  | 'ALREADY_EXISTS'
  | 'UNAVAILABLE'
  | 'DEADLINE_EXCEEDED';

/** A refusal decided by the coordinator, with the outcome class the edge reports. */
export class CoordinatorError extends CvcError<Outcome> {
  readonly outcome: Outcome;

  constructor(outcome: Outcome, message: string, options?: { cause?: unknown }) {
    super(outcome, message, options);
    this.outcome = outcome;
  }
}

/** Why a run's finalisation cannot succeed however often it is retried (the run ends FAILED with the message). */
export type FinalizeCode = 'NO_BEST_CHECKPOINT' | 'NO_TEST_SHARD' | 'NO_FINAL_CHECKPOINT' | 'ASSIGNMENTS_MISMATCH';

/** A permanent finalisation failure: retrying cannot help. */
export class FinalizeError extends CvcError<FinalizeCode> {
  constructor(code: FinalizeCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** Too many checkpoint uploads at once: the client should retry after `retryAfterMs`. */
export class UploadsBusyError extends CvcError<'UPLOADS_BUSY'> {
  constructor(
    limit: number,
    readonly retryAfterMs: number,
  ) {
    super('UPLOADS_BUSY', `too many concurrent checkpoint uploads (limit ${limit}); retry in ${retryAfterMs} ms`);
  }
}

/** The longest error text a run's fold or a clustering job keeps (the documents live in one NATS message each). */
export const MAX_ERROR_CHARS = 2000;

/** `text` cut to MAX_ERROR_CHARS characters, marked with "…" where cut. */
export const capError = (text: string): string => (text.length <= MAX_ERROR_CHARS ? text : `${text.slice(0, MAX_ERROR_CHARS - 1)}…`);
