import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, RetentionPolicy, type Consumer, type JetStreamClient, type JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { nanos } from '@nats-io/nats-core';
import { retry } from '@cvc/core';
import { isNatsUnavailable } from './availability.js';
import { MessagingError } from './errors.js';
import { consumeGivenUp, ensureGivenUpStream, maxDeliveriesSubject } from './given-up.js';
import { isConsumerNotFound, isStreamNotFound } from './jetstream-errors.js';
import { assertReplicasPossible, ensureStreamReplicas, placingReplicas } from './replicas.js';

/**
 * The unit of work a worker pulls: one fold of one run, or (with `jobId`) one
 * clustering job, whose runId and fold then name its source run and fold.
 */
export interface FoldTask {
  readonly runId: string;
  readonly fold: number;
  /** Set for a clustering job's task. */
  readonly jobId?: string;
  /**
   * Set when a fold paused at a sweep's rung (this epoch) is queued again to
   * go on past it: the message gets its own id, so the deduplication of the
   * fold's first task does not swallow it.
   */
  readonly resumeAt?: number;
  /**
   * With `resumeAt`: the fold's attempt count when its pause was cleared. It
   * makes the message id unique per pause (a fold paused twice at one rung,
   * after a retried attempt reported that epoch again, gets a second task)
   * and stable for a retried publish of the same resume. Absent in tasks
   * published before it existed (their id is the old one).
   */
  readonly attempts?: number;
}

export interface TaskQueueOptions {
  /** Stream name (default CVC_TASKS). */
  readonly stream?: string;
  /** Durable consumer shared by the worker pool (default workers). */
  readonly consumer?: string;
  /** Redelivery after this long without an ack or a heartbeat (ms, default 60 000). */
  readonly ackWaitMs?: number;
  /** Deliveries before a task is given up (default 5). */
  readonly maxDeliver?: number;
  /**
   * Copies of the stream and its consumer in a JetStream cluster (1..5,
   * default 1; CVC_NATS_REPLICAS). An existing stream with another count is
   * updated to it.
   */
  readonly replicas?: number;
  /**
   * How long opening the stream and a publish are retried while JetStream
   * cannot answer (no responders or a timeout while a stream leader is
   * elected after a node loss or a fresh placement, a reconnect), in ms
   * (default 15 000). Safe: opening is idempotent and the message id
   * deduplicates a publish that did land.
   */
  readonly publishRetryMs?: number;
  /**
   * Use the existing consumer's ack_wait and max_deliver instead of setting
   * them (workers: the coordinator owns them). The queue's `ackWaitMs` and
   * `maxDeliver` are then the consumer's, so a worker heartbeats often enough
   * for the ack_wait in force, whatever its own setting says. A consumer that
   * does not exist yet is created with this queue's values.
   */
  readonly adopt?: boolean;
}

/** A delivered task: ack when done, nak to hand it back, working() as a heartbeat. */
export interface TaskDelivery {
  readonly task: FoldTask;
  /** 1 on the first delivery. */
  readonly delivery: number;
  readonly maxDeliver: number;
  ack(): Promise<void>;
  nak(delayMs?: number): void;
  working(): void;
  term(reason: string): void;
}

export interface TaskQueue {
  readonly maxDeliver: number;
  readonly ackWaitMs: number;
  /** Publishes a task; a second publish of the same (run, fold) is deduplicated. */
  enqueue(task: FoldTask): Promise<{ duplicate: boolean }>;
  /** Waits up to `expiresMs` for the next task; undefined when none came. */
  next(expiresMs?: number): Promise<TaskDelivery | undefined>;
  /** Tasks waiting plus tasks delivered but not yet acknowledged. */
  depth(): Promise<{ pending: number; inFlight: number }>;
  /** The advisory subject published when a task exhausts max_deliver. */
  readonly maxDeliveriesSubject: string;
  /**
   * Calls `handler` for each task that exhausted max_deliver (JetStream's
   * advisory), then removes the task from the stream. Returns a stop function.
   * The advisories are kept in a stream (`<stream>_GIVEN_UP`, 7 days) and
   * read through a durable consumer shared by every caller, so a task that
   * gave up while no handler ran is handled when one starts, by one of them.
   * A failure of the handler or of JetStream is passed to `onError` (the
   * caller should log it) and the advisory is tried again later; a task
   * already removed is not a failure and is not handed to `handler` again.
   */
  onGivenUp(handler: (task: FoldTask, deliveries: number) => Promise<void>, onError?: (err: unknown, task: FoldTask | undefined) => void): () => void;
}

const SUBJECT = 'cvc.tasks';

/**
 * Encodes a task id for JetStream's message-id deduplication: `job.JOB` (a
 * clustering job), `RUN.FOLD` (a fold's first task), `RUN.FOLD.rRUNG.aATTEMPTS`
 * (a resume past a rung, one per pause) or `RUN.FOLD.rRUNG` (a resume without
 * `attempts`, as published before it existed).
 */
export const taskMsgId = (t: FoldTask): string => {
  if (t.jobId) return `job.${t.jobId}`;
  if (t.resumeAt === undefined || t.resumeAt <= 0) return `${t.runId}.${t.fold}`;
  return t.attempts === undefined ? `${t.runId}.${t.fold}.r${t.resumeAt}` : `${t.runId}.${t.fold}.r${t.resumeAt}.a${t.attempts}`;
};

/**
 * Creates (or opens) the work-queue stream and its durable pull consumer with
 * explicit acks, `ack_wait` and a bounded `max_deliver`.
 */
export async function createTaskQueue(nc: NatsConnection, opts: TaskQueueOptions = {}): Promise<TaskQueue> {
  const stream = opts.stream ?? 'CVC_TASKS';
  const durable = opts.consumer ?? 'workers';
  let ackWaitMs = opts.ackWaitMs ?? 60_000;
  let maxDeliver = opts.maxDeliver ?? 5;
  const replicas = opts.replicas ?? 1;
  assertReplicasPossible(nc, stream, replicas);
  const jsm = await jetstreamManager(nc);
  const subject = `${SUBJECT}.${stream.toLowerCase()}`;
  const consumerConfig = {
    durable_name: durable,
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(ackWaitMs),
    max_deliver: maxDeliver,
    deliver_policy: DeliverPolicy.All,
    filter_subject: subject,
    num_replicas: replicas,
  };
  // Idempotent, so retried while JetStream cannot answer yet (a stream leader being elected in a cluster, a reconnect).
  const ensure = async (): Promise<void> => {
    try {
      await jsm.streams.info(stream);
    } catch (err) {
      if (!isStreamNotFound(err)) throw err;
      await placingReplicas(stream, replicas, () =>
        jsm.streams.add({
          name: stream,
          subjects: [subject],
          retention: RetentionPolicy.Workqueue,
          duplicate_window: nanos(24 * 3600 * 1000),
          num_replicas: replicas,
        }),
      );
    }
    await ensureStreamReplicas(jsm, stream, replicas);
    // Next to the task stream: its give-up advisories are kept until a coordinator handles them.
    await ensureGivenUpStream(jsm, stream, durable, replicas);
    try {
      const info = await jsm.consumers.info(stream, durable);
      if (opts.adopt) {
        // The owner's settings stand; this queue takes them (ack_wait in nanoseconds).
        if (info.config.ack_wait) ackWaitMs = Math.round(info.config.ack_wait / 1e6);
        if (info.config.max_deliver !== undefined && info.config.max_deliver > 0) maxDeliver = info.config.max_deliver;
        return;
      }
      await placingReplicas(stream, replicas, () =>
        jsm.consumers.update(stream, durable, { ack_wait: consumerConfig.ack_wait, max_deliver: maxDeliver, num_replicas: replicas }),
      );
    } catch (err) {
      if (!isConsumerNotFound(err)) throw err;
      await placingReplicas(stream, replicas, () => jsm.consumers.add(stream, consumerConfig));
    }
  };
  await retry(ensure, {
    deadlineMs: opts.publishRetryMs ?? 15_000,
    initialDelayMs: 200,
    maxDelayMs: 2000,
    retryable: isNatsUnavailable,
    what: `opening task stream ${stream}`,
  });
  const js: JetStreamClient = jetstream(nc);
  let consumer: Consumer | undefined;
  const getConsumer = async (): Promise<Consumer> => (consumer ??= await js.consumers.get(stream, durable));

  const wrap = (m: JsMsg): TaskDelivery => {
    let task: FoldTask;
    try {
      task = m.json<FoldTask>();
    } catch (err) {
      m.term('malformed task');
      throw new MessagingError('TASK_MALFORMED', `task message ${m.seq} is not valid JSON`, { cause: err });
    }
    return {
      task,
      delivery: m.info.deliveryCount,
      maxDeliver,
      ack: async () => {
        await m.ackAck();
      },
      nak: (delayMs) => m.nak(delayMs),
      working: () => m.working(),
      term: (reason) => m.term(reason),
    };
  };

  return {
    maxDeliver,
    ackWaitMs,
    maxDeliveriesSubject: maxDeliveriesSubject(stream, durable),
    enqueue: (task) =>
      retry(
        async () => {
          const ack = await js.publish(subject, JSON.stringify(task), { msgID: taskMsgId(task) });
          return { duplicate: ack.duplicate };
        },
        {
          deadlineMs: opts.publishRetryMs ?? 15_000,
          initialDelayMs: 100,
          maxDelayMs: 2000,
          retryable: isNatsUnavailable,
          what: `publishing task ${taskMsgId(task)}`,
        },
      ),
    next: async (expiresMs = 5000) => {
      const m = await (await getConsumer()).next({ expires: Math.max(expiresMs, 1000) });
      return m ? wrap(m) : undefined;
    },
    onGivenUp: (handler, onError) =>
      consumeGivenUp<FoldTask>({
        nc,
        jsm,
        stream,
        durable,
        replicas,
        ackWaitMs: 60_000,
        decode: (m) => m.json<FoldTask>(),
        handler,
        ...(onError ? { onError } : {}),
      }),
    depth: async () => {
      const info = await jsm.consumers.info(stream, durable);
      return { pending: info.num_pending, inFlight: info.num_ack_pending };
    },
  };
}
