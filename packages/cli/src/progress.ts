import cliProgress from 'cli-progress';

/** The stream bars are drawn on (stderr, normally). */
export type ProgressStream = NodeJS.WritableStream & { isTTY?: boolean; columns?: number };

/** One bar's state: `label [bar] value/total detail`. */
export interface BarUpdate {
  readonly label: string;
  readonly value: number;
  readonly total: number;
  /** Free text after the counts (rates, ETA, losses). */
  readonly detail?: string;
}

export interface ProgressOptions {
  /**
   * Without a terminal: the shortest time between two lines of one bar whose
   * label did not change (a changed label always prints). Default 10 000 ms.
   */
  readonly plainIntervalMs?: number;
  /** Draws bars even when the stream is not a terminal (tests). */
  readonly forceTty?: boolean;
}

/** The plain-text form of a bar, as logged when the stream is not a terminal. */
export function plainLine(u: BarUpdate): string {
  return `${u.label} ${u.value}/${u.total}${u.detail ? ` ${u.detail}` : ''}`;
}

/**
 * Every progress display of the CLI: named bars drawn by cli-progress's
 * MultiBar on a terminal (redrawn in place, permanent lines above them), or
 * plain log lines elsewhere (CI): a bar prints a line when its label changes,
 * and at most every `plainIntervalMs` while only its counts change.
 */
export class Progress {
  private readonly multi: cliProgress.MultiBar | undefined;
  private readonly bars = new Map<string, cliProgress.SingleBar>();
  private readonly plain = new Map<string, { label: string; line: string; at: number; latest: string }>();
  private readonly interval: number;
  private stopped = false;
  /** Whether cli-progress has drawn (and so tracks the cursor); logs go through it from then on. */
  private drawn = false;

  constructor(
    private readonly out: ProgressStream,
    opts: ProgressOptions = {},
  ) {
    this.interval = opts.plainIntervalMs ?? 10_000;
    if (out.isTTY === true || opts.forceTty === true) {
      this.multi = new cliProgress.MultiBar(
        {
          stream: out,
          format: '{label} [{bar}] {value}/{total} {detail}',
          barsize: 20,
          // No terminal state to restore (hidden cursor, wrapping off): a second Ctrl-C ends the
          // process without running any handler, and the terminal must be left as it was.
          hideCursor: false,
          linewrap: true,
          clearOnComplete: false,
          // main() owns SIGINT.
          gracefulExit: false,
          autopadding: true,
          noTTYOutput: opts.forceTty === true,
          notTTYSchedule: 60_000,
        },
        cliProgress.Presets.shades_classic,
      );
    }
  }

  /** Whether bars are drawn in place (a terminal) rather than logged as lines. */
  get interactive(): boolean {
    return this.multi !== undefined;
  }

  /** Creates or updates the bar `key`. */
  set(key: string, u: BarUpdate): void {
    if (this.stopped) return;
    const payload = { label: u.label, detail: u.detail ?? '' };
    const total = Math.max(u.total, 0);
    if (this.multi) {
      const bar = this.bars.get(key);
      if (!bar) {
        this.bars.set(key, this.multi.create(total, u.value, payload));
        this.drawn = true;
      } else {
        bar.setTotal(total);
        bar.update(u.value, payload);
      }
      return;
    }
    const line = plainLine(u);
    const prev = this.plain.get(key);
    const now = Date.now();
    if (prev && (prev.line === line || (prev.label === u.label && now - prev.at < this.interval))) {
      prev.latest = line;
      return;
    }
    this.plain.set(key, { label: u.label, line, at: now, latest: line });
    this.out.write(`${line}\n`);
  }

  /** Removes the bar `key` (a finished download, say). */
  remove(key: string): void {
    const bar = this.bars.get(key);
    if (bar && this.multi) this.multi.remove(bar);
    this.bars.delete(key);
    this.plain.delete(key);
  }

  /** A permanent line above the bars (or a plain line). */
  log(line: string): void {
    if (this.stopped) return;
    if (this.multi && this.drawn) {
      // Above the bars (over a removed bar's line); cli-progress writes it on its next redraw: force one.
      this.multi.log(`${line}\n`);
      this.multi.update();
    } else this.out.write(`${line}\n`);
  }

  /**
   * Draws the bars a last time and leaves them on screen (without a
   * terminal: logs each bar's last state if a throttle held it back); idempotent.
   */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.multi?.stop();
    for (const p of this.plain.values()) if (p.latest !== p.line) this.out.write(`${p.latest}\n`);
    this.plain.clear();
  }
}
