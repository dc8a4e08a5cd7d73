import { duration } from './format.js';

/**
 * A one-line progress bar on a TTY (redrawn in place), or one line per
 * finished epoch elsewhere (CI logs).
 */
export class ProgressBar {
  private lastLen = 0;

  constructor(private readonly out: NodeJS.WritableStream & { isTTY?: boolean; columns?: number }) {}

  /** Redraws the bar: `label [#####.....] done/total  extra`. */
  update(label: string, done: number, total: number, extra: string, etaSeconds?: number): void {
    if (!this.out.isTTY) return;
    const width = 24;
    const filled = total > 0 ? Math.round((done / total) * width) : 0;
    const eta = etaSeconds !== undefined && Number.isFinite(etaSeconds) ? ` eta ${duration(etaSeconds)}` : '';
    let text = `${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} ${extra}${eta}`;
    const cols = this.out.columns ?? 120;
    if (text.length > cols - 1) text = text.slice(0, cols - 1);
    this.out.write(`\r${text.padEnd(this.lastLen)}`);
    this.lastLen = text.length;
  }

  /** Ends the current bar with a permanent line. */
  done(line: string): void {
    if (this.out.isTTY) this.out.write(`\r${line.padEnd(this.lastLen)}\n`);
    else this.out.write(`${line}\n`);
    this.lastLen = 0;
  }

  /** A permanent line that does not disturb the bar. */
  log(line: string): void {
    this.done(line);
  }
}
