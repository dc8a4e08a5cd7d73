import { CvcError } from '@cvc/core';

/** Wrong command-line usage: exit code 2. */
export class UsageError extends CvcError {
  constructor(message: string) {
    super('USAGE', message);
  }
}
