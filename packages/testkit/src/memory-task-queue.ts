import { taskMsgId, type FoldTask, type TaskDelivery, type TaskQueue } from '@cvc/messaging';

/** Options of the in-memory queue; the defaults are the real queue's. */
export interface MemoryTaskQueueOptions {
  /** Stream name, only used in `maxDeliveriesSubject` (default CVC_TASKS). */
  readonly stream?: string;
  /** Durable consumer name, only used in `maxDeliveriesSubject` (default workers). */
  readonly consumer?: string;
  /** Reported as `ackWaitMs`; the fake never expires deliveries by itself, call `expireInFlight()` (default 60 000). */
  readonly ackWaitMs?: number;
  /** Deliveries before a task is given up (default 5). */
  readonly maxDeliver?: number;
}

/** What became of one published task so far. */
export interface MemoryTaskRecord {
  readonly task: FoldTask;
  /** Stream sequence, 1 for the first task published. */
  readonly seq: number;
  /** Deliveries so far. */
  readonly deliveries: number;
  /** Heartbeats (`working()`) over all deliveries. */
  readonly heartbeats: number;
  readonly state: 'pending' | 'in-flight' | 'acked' | 'termed' | 'given-up';
  /** The reason given to `term()`, if it was termed. */
  readonly termReason?: string;
}

/**
 * The in-memory TaskQueue plus hooks for tests. Delivery follows JetStream's
 * work-queue consumer: in stream order, redelivery after a nak or an expired
 * ack wait, give-up (the onGivenUp handlers, then removal) once a task was
 * delivered `maxDeliver` times and is due again. Unlike the real queue,
 * `next(expiresMs)` waits exactly `expiresMs` (the real one at least 1 s), and
 * an ack wait runs out only when a test calls `expireInFlight()`.
 */
export interface MemoryTaskQueue extends TaskQueue {
  /**
   * Treats the ack wait of every unacknowledged delivery as elapsed (a worker
   * died): each goes back to the queue, or is given up when it has had its
   * `maxDeliver` deliveries. Returns how many deliveries expired.
   */
  expireInFlight(): number;
  /** Every task published (duplicates excluded), in stream order. */
  records(): MemoryTaskRecord[];
  /** The record of (run, fold), or undefined when it was never published. */
  record(task: FoldTask): MemoryTaskRecord | undefined;
  /** Resolves once every onGivenUp handler call started so far has settled. */
  settled(): Promise<void>;
}

interface Msg {
  readonly task: FoldTask;
  readonly seq: number;
  deliveries: number;
  heartbeats: number;
  state: MemoryTaskRecord['state'];
  termReason?: string;
  /** Bumped at each delivery, so a stale delivery's nak cannot requeue a newer one. */
  generation: number;
}

/** Creates an in-memory TaskQueue with the real queue's deduplication, delivery counting and give-up. */
export function createMemoryTaskQueue(opts: MemoryTaskQueueOptions = {}): MemoryTaskQueue {
  const stream = opts.stream ?? 'CVC_TASKS';
  const durable = opts.consumer ?? 'workers';
  const ackWaitMs = opts.ackWaitMs ?? 60_000;
  const maxDeliver = opts.maxDeliver ?? 5;
  const msgs: Msg[] = [];
  // JetStream's duplicate window (24 h in the real stream) covers acknowledged tasks too.
  const seen = new Set<string>();
  const waiters: (() => void)[] = [];
  const handlers = new Set<(task: FoldTask, deliveries: number) => Promise<void>>();
  const running = new Set<Promise<void>>();
  let seq = 0;

  const wake = (): void => {
    for (const w of waiters.splice(0)) w();
  };
  const giveUp = (m: Msg): void => {
    m.state = 'given-up';
    for (const h of handlers) {
      const p = h(m.task, m.deliveries).catch(() => {
        // Like the real queue: the advisory is not repeated when the handler fails; the fold stays as recorded.
      });
      running.add(p);
      void p.finally(() => running.delete(p));
    }
  };
  /** A delivery ended without an ack: due again, or given up after max_deliver. */
  const requeue = (m: Msg): void => {
    if (m.state !== 'in-flight') return;
    if (m.deliveries >= maxDeliver) giveUp(m);
    else {
      m.state = 'pending';
      wake();
    }
  };
  const deliver = (m: Msg): TaskDelivery => {
    m.state = 'in-flight';
    m.deliveries += 1;
    const generation = ++m.generation;
    const current = (): boolean => m.generation === generation && m.state === 'in-flight';
    return {
      task: { ...m.task },
      delivery: m.deliveries,
      maxDeliver,
      ack: () => {
        // An ack is for the stream sequence, so a late ack of an earlier delivery still removes the task.
        if (m.state === 'in-flight' || m.state === 'pending') m.state = 'acked';
        return Promise.resolve();
      },
      nak: (delayMs) => {
        if (!current()) return;
        if (delayMs !== undefined && delayMs > 0) {
          setTimeout(() => {
            if (current()) requeue(m);
          }, delayMs).unref();
        } else requeue(m);
      },
      working: () => {
        if (current()) m.heartbeats += 1;
      },
      term: (reason) => {
        if (m.state !== 'in-flight' && m.state !== 'pending') return;
        m.state = 'termed';
        m.termReason = reason;
      },
    };
  };
  const take = (): TaskDelivery | undefined => {
    const m = msgs.find((x) => x.state === 'pending');
    return m ? deliver(m) : undefined;
  };
  const toRecord = (m: Msg): MemoryTaskRecord => ({
    task: { ...m.task },
    seq: m.seq,
    deliveries: m.deliveries,
    heartbeats: m.heartbeats,
    state: m.state,
    ...(m.termReason !== undefined ? { termReason: m.termReason } : {}),
  });

  return {
    maxDeliver,
    ackWaitMs,
    maxDeliveriesSubject: `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${stream}.${durable}`,
    enqueue: (task) => {
      const id = taskMsgId(task);
      if (seen.has(id)) return Promise.resolve({ duplicate: true });
      seen.add(id);
      msgs.push({
        task: { runId: task.runId, fold: task.fold, ...(task.jobId ? { jobId: task.jobId } : {}) },
        seq: ++seq,
        deliveries: 0,
        heartbeats: 0,
        state: 'pending',
        generation: 0,
      });
      wake();
      return Promise.resolve({ duplicate: false });
    },
    next: async (expiresMs = 5000) => {
      const now = take();
      if (now) return now;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, expiresMs);
        function done(): void {
          clearTimeout(timer);
          const i = waiters.indexOf(done);
          if (i >= 0) waiters.splice(i, 1);
          resolve();
        }
        waiters.push(done);
      });
      return take();
    },
    depth: () =>
      Promise.resolve({
        pending: msgs.filter((m) => m.state === 'pending').length,
        inFlight: msgs.filter((m) => m.state === 'in-flight').length,
      }),
    onGivenUp: (handler) => {
      handlers.add(handler);
      return () => handlers.delete(handler);
    },
    expireInFlight: () => {
      const expired = msgs.filter((m) => m.state === 'in-flight');
      for (const m of expired) requeue(m);
      return expired.length;
    },
    records: () => msgs.map(toRecord),
    record: (task) => {
      const m = msgs.find((x) => taskMsgId(x.task) === taskMsgId(task));
      return m ? toRecord(m) : undefined;
    },
    settled: async () => {
      while (running.size > 0) await Promise.allSettled([...running]);
    },
  };
}
