import { CvcError } from '@cvc/core';

/**
 * Why a messaging operation failed: a document that is missing or exists
 * already, a compare-and-set that kept losing to other writers, a task
 * message that is not a task, a nats-server that would not start.
 * (NATS being unreachable is not wrapped: `isNatsUnavailable` recognises it.)
 */
export type MessagingErrorCode = 'NOT_FOUND' | 'ALREADY_EXISTS' | 'CONFLICT' | 'TASK_MALFORMED' | 'NATS_START' | 'NATS_REPLICAS';

/** A task-queue, document-store or nats-server problem. */
export class MessagingError extends CvcError<MessagingErrorCode> {}
