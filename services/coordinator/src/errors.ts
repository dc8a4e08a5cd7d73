import { CvcError } from '@cvc/core';

/** gRPC-independent outcome classes; the server maps them to status codes. */
export type Outcome = 'NOT_FOUND' | 'INVALID_ARGUMENT' | 'FAILED_PRECONDITION' | 'RESOURCE_EXHAUSTED' | 'CANCELLED' | 'DATA_LOSS' | 'ALREADY_EXISTS' | 'UNAVAILABLE';

export class CoordinatorError extends CvcError {
  readonly outcome: Outcome;

  constructor(outcome: Outcome, message: string, options?: { cause?: unknown }) {
    super(outcome, message, options);
    this.outcome = outcome;
  }
}
