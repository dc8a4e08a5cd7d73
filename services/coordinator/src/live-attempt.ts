/**
 * How long after submission the periodic recover() may publish a
 * never-started fold's or job's task again: inside the task queue's 24-hour
 * duplicate window, with an hour to spare (a second publish is dropped).
 */
export const REQUEUE_WINDOW_MS = 23 * 3600 * 1000;

/**
 * Whether a delivery of a fold's or a clustering job's task is a duplicate
 * of the work of the attempt that holds the token, to be refused (the worker
 * acknowledges a refused task and drops it) rather than handed a new token,
 * which would make the two attempts steal the token from each other until
 * one task runs out of deliveries and fails the work. A second message for
 * the same work exists, for example, when a restarted coordinator publishes
 * a never-started task again after the queue's 24-hour duplicate window.
 *
 * Refused only when both hold:
 * - `delivery` is 1: a message never delivered before, so not the live
 *   attempt's own one. A redelivery (its worker crashed, or handed it back
 *   with a nak when stopping or after a failure it could not record) always
 *   starts, however recently the attempt reported, so that work is never
 *   left without a task.
 * - the attempt was heard from (`lastMs`, the coordinator's clock; 0 or
 *   undefined: never) less than half the queue's ack_wait ago. An attempt
 *   quiet for longer may be dead, and the new message may as well take over.
 *   (Its worker heartbeats at least every third of an ack_wait, so a crashed
 *   attempt's own message comes back at least two thirds of an ack_wait after
 *   its last report; the half leaves a sixth for the delays in between.)
 *
 * An attempt that reports less often than every half ack_wait (progress
 * reports off, a long phase without reports such as loading its data) is not
 * protected: the old behaviour, the new delivery takes the token.
 */
export function duplicateOfLiveAttempt(delivery: number, lastMs: number | undefined, nowMs: number, ackWaitMs: number): boolean {
  return delivery <= 1 && lastMs !== undefined && lastMs > 0 && nowMs - lastMs < ackWaitMs / 2;
}
