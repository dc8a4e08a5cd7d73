/**
 * Whether the attempt that holds a fold's or a clustering job's token is
 * alive enough that another delivery of its work is a duplicate (a second
 * message for the same work, say one a restarted coordinator published after
 * the queue's 24-hour duplicate window), to be refused rather than handed a
 * new token: the attempt reported to the coordinator less than half the
 * queue's ack_wait ago (`lastMs`, the coordinator's clock; 0 or undefined:
 * never).
 *
 * A genuine redelivery, after the attempt's worker died, is never refused: a
 * worker heartbeats its delivery at least every third of an ack_wait, so its
 * last heartbeat is at most a third of one before its last report, and
 * JetStream redelivers one ack_wait after that heartbeat: at least two thirds
 * of an ack_wait after the last report. The half leaves a sixth of one (10 s
 * at the default 60 s) for the delays between worker, NATS and coordinator.
 * An attempt that reports less often than every half ack_wait (progress
 * reports off, a long phase without reports) is not protected, which is the
 * old behaviour: the new delivery takes the token.
 */
export function reportedRecently(lastMs: number | undefined, nowMs: number, ackWaitMs: number): boolean {
  return lastMs !== undefined && lastMs > 0 && nowMs - lastMs < ackWaitMs / 2;
}
