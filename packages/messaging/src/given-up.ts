import { setTimeout as sleep } from 'node:timers/promises';
import { AckPolicy, DeliverPolicy, jetstream, RetentionPolicy, type ConsumerMessages, type JetStreamManager, type JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { nanos } from '@nats-io/nats-core';
import { backoffDelay, createBackoff } from '@cvc/core';
import { isConsumerNotFound, isNoMessageFound, isStreamNotFound } from './jetstream-errors.js';
import { ensureStreamReplicas, placingReplicas } from './replicas.js';

/** How long a captured give-up advisory is kept for a coordinator to handle it. */
export const GIVEN_UP_MAX_AGE_MS = 7 * 24 * 3600 * 1000;

/** The give-up advisory JetStream publishes (core NATS) when a message of `stream` exhausts max_deliver on consumer `durable`. */
export const maxDeliveriesSubject = (stream: string, durable: string): string => `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${stream}.${durable}`;

/** The stream that keeps the task stream's give-up advisories (one per task stream; each consumer's advisories by subject). */
export const givenUpStreamName = (stream: string): string => `${stream}_GIVEN_UP`;

/** The durable consumer the coordinators share on the give-up stream, per task consumer. */
export const givenUpConsumerName = (durable: string): string => `${durable}-given-up`;

/**
 * Creates (or opens) the stream that captures the give-up advisories of
 * consumer `durable` on `stream`: limits retention, kept 7 days, `replicas`
 * copies. Idempotent; an existing stream gains the subject when it lacks it.
 * An advisory is plain core NATS, lost when nobody listens; captured here it
 * waits for a coordinator that was down when the task gave up.
 */
export async function ensureGivenUpStream(jsm: JetStreamManager, stream: string, durable: string, replicas: number): Promise<void> {
  const name = givenUpStreamName(stream);
  const subject = maxDeliveriesSubject(stream, durable);
  try {
    const info = await jsm.streams.info(name);
    const subjects = info.config.subjects ?? [];
    if (!subjects.includes(subject)) await jsm.streams.update(name, { subjects: [...subjects, subject] });
  } catch (err) {
    if (!isStreamNotFound(err)) throw err;
    await placingReplicas(name, replicas, () =>
      jsm.streams.add({ name, subjects: [subject], retention: RetentionPolicy.Limits, max_age: nanos(GIVEN_UP_MAX_AGE_MS), num_replicas: replicas }),
    );
  }
  await ensureStreamReplicas(jsm, name, replicas);
}

/** The give-up advisory's fields cvc reads. */
interface MaxDeliveriesAdvisory {
  readonly stream_seq: number;
  readonly deliveries: number;
}

/** What {@link consumeGivenUp} needs. */
export interface GivenUpConsumer<T> {
  readonly nc: NatsConnection;
  readonly jsm: JetStreamManager;
  /** The task stream and its consumer. */
  readonly stream: string;
  readonly durable: string;
  readonly replicas: number;
  /** Redelivery of an advisory whose handling neither acked nor failed within this long (ms). */
  readonly ackWaitMs: number;
  /** Decodes a stored task message. */
  decode(m: { json<U>(): U }): T;
  handler(task: T, deliveries: number): Promise<void>;
  onError?(err: unknown, task: T | undefined): void;
}

/**
 * Handles the captured give-up advisories through a durable consumer shared
 * by every coordinator (each advisory goes to one of them at a time; on a
 * failure it comes back, to this or another one): looks up the task message
 * the advisory names, calls the handler, deletes the message, then acks. A
 * task message already gone means another coordinator handled it: acked
 * without calling the handler. A failure is passed to `onError` and the
 * advisory is nak'ed with a growing delay (1 s to 1 min), so it is tried
 * again for as long as it is kept (7 days). Until stopped, a lost consumer
 * or connection is reopened with backoff. Returns the stop function.
 */
export function consumeGivenUp<T>(o: GivenUpConsumer<T>): () => void {
  const stop = new AbortController();
  let messages: ConsumerMessages | undefined;
  const consumerName = givenUpConsumerName(o.durable);
  const open = async (): Promise<ConsumerMessages> => {
    const stream = givenUpStreamName(o.stream);
    try {
      await o.jsm.consumers.info(stream, consumerName);
    } catch (err) {
      if (!isConsumerNotFound(err)) throw err;
      // The same config from two coordinators at once is accepted by JetStream for both.
      await placingReplicas(stream, o.replicas, () =>
        o.jsm.consumers.add(stream, {
          durable_name: consumerName,
          ack_policy: AckPolicy.Explicit,
          ack_wait: nanos(o.ackWaitMs),
          max_deliver: -1,
          deliver_policy: DeliverPolicy.All,
          filter_subject: maxDeliveriesSubject(o.stream, o.durable),
          num_replicas: o.replicas,
        }),
      );
    }
    const consumer = await jetstream(o.nc).consumers.get(stream, consumerName);
    return consumer.consume({ max_messages: 16 });
  };
  const handle = async (m: JsMsg): Promise<void> => {
    let task: T | undefined;
    let adv: MaxDeliveriesAdvisory;
    try {
      adv = m.json<MaxDeliveriesAdvisory>();
    } catch (err) {
      o.onError?.(err, undefined);
      m.term('malformed max-deliveries advisory');
      return;
    }
    try {
      // null: already removed (another coordinator handled it).
      const stored = await o.jsm.streams.getMessage(o.stream, { seq: adv.stream_seq });
      if (stored) {
        task = o.decode(stored);
        await o.handler(task, adv.deliveries);
        await o.jsm.streams.deleteMessage(o.stream, adv.stream_seq);
      }
      await m.ackAck();
    } catch (err) {
      // Removed meanwhile is done; anything else is reported and tried again later. The fold stays as recorded.
      if (isNoMessageFound(err)) {
        await m.ackAck().catch((ackErr: unknown) => o.onError?.(ackErr, task));
        return;
      }
      o.onError?.(err, task);
      m.nak(backoffDelay(m.info.deliveryCount, { initialDelayMs: 1000, maxDelayMs: 60_000 }, Math.random()));
    }
  };
  const running = (): boolean => !stop.signal.aborted && !o.nc.isClosed();
  void (async () => {
    const backoff = createBackoff({ initialDelayMs: 500, maxDelayMs: 10_000 });
    while (running()) {
      try {
        messages = await open();
        if (!running()) break;
        for await (const m of messages) {
          backoff.reset();
          await handle(m);
        }
      } catch (err) {
        if (!running()) break;
        o.onError?.(err, undefined);
      }
      // The consumer went away (or failed to open): open it again after a while, unless stopped.
      if (running()) await sleep(backoff.next(), undefined, { signal: stop.signal, ref: false }).catch(() => undefined /* stopped while waiting */);
    }
    messages?.stop();
  })();
  return () => {
    stop.abort();
    messages?.stop();
  };
}
