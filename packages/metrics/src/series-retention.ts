/** Something a label set can be removed from: a prom-client Gauge, Counter, Histogram or Summary. */
export interface RemovableMetric {
  remove(labels: Record<string, string | number>): void;
}

/** One label set of one metric, as tracked under a key. */
export interface TrackedSeries {
  readonly metric: RemovableMetric;
  readonly labels: Readonly<Record<string, string>>;
}

/** The clock and timers a SeriesRetention uses (default: performance.now and the global timers, unref'd). */
export interface RetentionClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface SeriesRetentionOptions {
  /** How long a finished key's series stay on /metrics after `finished(key)` (ms; 0: removed at once). */
  readonly retentionMs: number;
  /** Most finished keys kept at once (default 500): beyond it the oldest finished ones are removed at once. */
  readonly maxFinished?: number;
  readonly clock?: RetentionClock;
}

/** Default cap on the finished keys whose series are kept. */
export const DEFAULT_MAX_FINISHED = 500;

/** Default retention of a finished key's series: 10 minutes. */
export const DEFAULT_RETENTION_MS = 10 * 60_000;

const realClock: RetentionClock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

const seriesId = (metricId: number, labels: Readonly<Record<string, string>>): string =>
  `${metricId}\u0000${Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join('\u0000')}`;

/**
 * Bookkeeping that keeps per-task / per-run / per-job Prometheus series off
 * /metrics once their task has ended. Each label set is registered under a
 * key (a run, a fold task, a job) with the metric it appears on (`track`);
 * `finished(key)` schedules the removal of all of them `retentionMs` later, long
 * enough for Prometheus to scrape the final values (its TSDB keeps the
 * history). A key that is tracked again before then is live again. Live keys
 * are never removed; at most `maxFinished` finished keys are kept (the oldest
 * go first). One timer (unref'd) serves all keys; `close()` clears it.
 */
export class SeriesRetention {
  private readonly retentionMs: number;
  private readonly maxFinished: number;
  private readonly clock: RetentionClock;
  /** Every tracked key, with its series by metric and label values. */
  private readonly keys = new Map<string, Map<string, TrackedSeries>>();
  /** Finished keys and when they go; in finishing order, which is deadline order (one retention for all). */
  private readonly finishedAt = new Map<string, number>();
  /** Small ids of metric objects, for the series ids. */
  private readonly metricIds = new Map<RemovableMetric, number>();
  private timer: unknown;
  private closed = false;

  constructor(opts: SeriesRetentionOptions) {
    if (!Number.isInteger(opts.retentionMs) || opts.retentionMs < 0)
      throw new RangeError(`retentionMs must be a whole number of ms >= 0, got ${opts.retentionMs}`);
    const max = opts.maxFinished ?? DEFAULT_MAX_FINISHED;
    if (!Number.isInteger(max) || max < 0) throw new RangeError(`maxFinished must be a whole number >= 0, got ${max}`);
    this.retentionMs = opts.retentionMs;
    this.maxFinished = max;
    this.clock = opts.clock ?? realClock;
  }

  /** Registers `labels` of `metric` under `key`; a finished key is live again (its removal is called off). */
  track(key: string, metric: RemovableMetric, labels: Readonly<Record<string, string>>): void {
    let series = this.keys.get(key);
    if (!series) this.keys.set(key, (series = new Map<string, TrackedSeries>()));
    let id = this.metricIds.get(metric);
    if (id === undefined) this.metricIds.set(metric, (id = this.metricIds.size));
    series.set(seriesId(id, labels), { metric, labels: { ...labels } });
    this.finishedAt.delete(key);
  }

  /** Whether `key` has series: live, or finished and not removed yet. */
  has(key: string): boolean {
    return this.keys.has(key);
  }

  /** Whether `key` is finished and waits for its removal. */
  isFinished(key: string): boolean {
    return this.finishedAt.has(key);
  }

  /** The series tracked under `key` (empty when none). */
  series(key: string): TrackedSeries[] {
    return [...(this.keys.get(key)?.values() ?? [])];
  }

  /** Removes one label set of `metric` under `key` now (a series whose value went away while its key is live). */
  untrack(key: string, metric: RemovableMetric, labels: Readonly<Record<string, string>>): void {
    metric.remove(labels);
    const series = this.keys.get(key);
    const id = this.metricIds.get(metric);
    if (!series || id === undefined) return;
    series.delete(seriesId(id, labels));
    if (series.size === 0) this.forget(key);
  }

  /**
   * The task, run or job of `key` ended: its series are removed after the
   * retention (at once with a retention of 0). A key finished already keeps
   * its first deadline; an unknown key is ignored.
   */
  finished(key: string): void {
    if (!this.keys.has(key) || this.finishedAt.has(key)) return;
    if (this.retentionMs === 0) return this.remove(key);
    this.finishedAt.set(key, this.clock.now() + this.retentionMs);
    for (const oldest of this.finishedAt.keys()) {
      if (this.finishedAt.size <= this.maxFinished) break;
      this.remove(oldest);
    }
    this.arm();
  }

  /** Removes every series of `key` now, live or finished. */
  remove(key: string): void {
    for (const s of this.keys.get(key)?.values() ?? []) s.metric.remove(s.labels);
    this.forget(key);
  }

  /** Live and finished keys (for tests and diagnostics). */
  get size(): { readonly live: number; readonly finished: number } {
    return { live: this.keys.size - this.finishedAt.size, finished: this.finishedAt.size };
  }

  /** Clears the timer; the series stay, and finished keys are no longer removed. */
  close(): void {
    this.closed = true;
    this.disarm();
  }

  private forget(key: string): void {
    this.keys.delete(key);
    this.finishedAt.delete(key);
  }

  private disarm(): void {
    if (this.timer === undefined) return;
    this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** (Re)arms the one timer for the earliest deadline. */
  private arm(): void {
    this.disarm();
    if (this.closed) return;
    const first = this.finishedAt.values().next();
    if (first.done) return;
    this.timer = this.clock.setTimeout(() => this.expire(), Math.max(0, first.value - this.clock.now()));
  }

  private expire(): void {
    this.timer = undefined;
    const now = this.clock.now();
    for (const [key, at] of this.finishedAt) {
      if (at > now) break;
      this.remove(key);
    }
    this.arm();
  }
}

/** A service's retention settings: how long a finished task's series stay, the cap, the clock. */
export interface RetentionSettings {
  /** Milliseconds a finished task's / run's / job's series stay on /metrics (default 10 minutes). */
  readonly retentionMs?: number;
  /** Most finished tasks (runs, jobs) whose series are kept (default 500). */
  readonly maxFinished?: number;
  readonly clock?: RetentionClock;
}

/** The SeriesRetention of a service's registry, from its settings. */
export function retentionOf(opts: RetentionSettings): SeriesRetention {
  return new SeriesRetention({
    retentionMs: opts.retentionMs ?? DEFAULT_RETENTION_MS,
    ...(opts.maxFinished !== undefined ? { maxFinished: opts.maxFinished } : {}),
    ...(opts.clock ? { clock: opts.clock } : {}),
  });
}
