import { CvcError } from '@cvc/core';

/** A compute backend could not be loaded or a kernel failed. */
export class RuntimeError extends CvcError {}
