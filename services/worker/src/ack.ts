import { describeError, type Logger } from '@cvc/core';
import type { TaskDelivery } from '@cvc/messaging';

/**
 * Acknowledges a task whose work is over (cancelled, stopped), logging
 * instead of throwing when the ack itself fails (NATS unreachable, a
 * timeout): the task then comes back after ack_wait and its next attempt
 * finds nothing to do, whereas a throw here would end the worker's loop.
 */
export async function ackOrLog(d: TaskDelivery, logger: Logger, log: Record<string, unknown>): Promise<void> {
  try {
    await d.ack();
  } catch (err) {
    logger.warn('acknowledging the task failed; it will be delivered again and found done', { ...log, error: describeError(err) });
  }
}
