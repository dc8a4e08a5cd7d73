import { CvcError } from '@cvc/core';

/** A model, checkpoint or training problem. */
export class ModelError extends CvcError {}
