import { CvcError } from '@cvc/core';

/** gRPC-independent outcome classes; the server maps them to status codes. */
export type Outcome = 'NOT_FOUND' | 'INVALID_ARGUMENT' | 'FAILED_PRECONDITION' | 'RESOURCE_EXHAUSTED' | 'CANCELLED' | 'DATA_LOSS' | 'ALREADY_EXISTS' | 'UNAVAILABLE';

/** A refusal decided by the coordinator, with the outcome class the edge reports. */
export class CoordinatorError extends CvcError<Outcome> {
  readonly outcome: Outcome;

  constructor(outcome: Outcome, message: string, options?: { cause?: unknown }) {
    super(outcome, message, options);
    this.outcome = outcome;
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
