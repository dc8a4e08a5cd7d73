import { CvcError } from '@cvc/core';

/**
 * Why a messaging operation failed: a document that is missing or exists
 * already, a compare-and-set that kept losing to other writers, a task
 * message that is not a task, a nats-server that would not start, a
 * document too big for the server to take (TOO_LARGE: over its max_payload or
 * the bucket's largest value; retrying cannot help).
 * (NATS being unreachable is not wrapped: `isNatsUnavailable` recognises it.)
 */
export type MessagingErrorCode = 'NOT_FOUND' | 'ALREADY_EXISTS' | 'CONFLICT' | 'TASK_MALFORMED' | 'NATS_START' | 'NATS_REPLICAS' | 'TOO_LARGE';

/** A task-queue, document-store or nats-server problem. */
export class MessagingError extends CvcError<MessagingErrorCode> {}
