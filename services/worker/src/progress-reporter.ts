import { status } from '@grpc/grpc-js';
import { describeError, type Logger } from '@cvc/core';
import type { BatchProgress } from '@cvc/model';
import type { FoldProgress } from '@cvc/proto';

/**
 * Seconds until the fold's last epoch ends at the pace of the epoch so far:
 * the images left in this epoch plus every later epoch's images, over the
 * current images per second, plus `epochOverheadSeconds` for this epoch and
 * each later one (the time an epoch takes outside training: its validation
 * pass, the epoch report and the checkpoint upload, as measured on the last
 * epoch; 0 before the first epoch ends). The final train/val/test evaluation
 * after the last epoch is not counted. Undefined when there is no pace to go
 * by yet.
 */
export function foldEtaSeconds(p: BatchProgress, epochOverheadSeconds = 0): number | undefined {
  if (!(p.imagesPerSec > 0) || !Number.isFinite(p.imagesPerSec)) return undefined;
  const laterEpochs = Math.max(0, p.epochs - p.epoch);
  const remaining = Math.max(0, p.totalImages - p.images) + laterEpochs * p.totalImages;
  return remaining / p.imagesPerSec + Math.max(0, epochOverheadSeconds) * (laterEpochs + 1);
}

/** The wire form of a batch progress sample taken at `nowMs`, or undefined when it holds a non-finite number. */
export function toFoldProgress(p: BatchProgress, nowMs: number, epochOverheadSeconds = 0): FoldProgress | undefined {
  const eta = foldEtaSeconds(p, epochOverheadSeconds);
  if (eta === undefined || !Number.isFinite(eta) || !Number.isFinite(p.loss) || p.loss < 0) return undefined;
  return {
    epoch: p.epoch,
    epochs: p.epochs,
    images: p.images,
    totalImages: p.totalImages,
    imagesPerSec: p.imagesPerSec,
    loss: p.loss,
    etaSeconds: eta,
    // The coordinator stamps the time with its own clock; this is the worker's, for the record.
    updatedAtMs: Math.round(nowMs),
  };
}

export interface ProgressReporterOptions {
  /** Sends one report (the coordinator's ReportProgress). */
  readonly send: (p: FoldProgress) => Promise<unknown>;
  /** Minimum milliseconds between two sends. */
  readonly intervalMs: number;
  /** Clock in milliseconds. */
  readonly now: () => number;
  readonly logger: Logger;
  /** Fields added to the log line of a failed send (run, fold, ...). */
  readonly logFields?: Record<string, unknown>;
  /** Least milliseconds between two warnings about failing reports (default 60 000). */
  readonly warnEveryMs?: number;
}

/** Failed reports in a row after which they are logged at warn (rate-limited), not debug. */
export const PROGRESS_FAILURES_BEFORE_WARN = 3;

/** The gRPC code of a failed call by name (`INVALID_ARGUMENT`), or undefined when the error has none. */
function grpcCodeName(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? (status[code] ?? String(code)) : undefined;
}

/**
 * Forwards the trainer's progress inside an epoch to the coordinator,
 * fire-and-forget: at most one report every `intervalMs` and never more than
 * one in flight (a sample that comes while one is in flight is dropped, the
 * next one goes out once it settles). A failed report is dropped: progress
 * is for display, and the next report supersedes it. It is logged at debug,
 * or at warn (at most once every `warnEveryMs`, with the gRPC code and the
 * failures in a row) once `PROGRESS_FAILURES_BEFORE_WARN` reports in a row
 * failed: a coordinator that refuses every report must show at the default
 * level.
 */
export class ProgressReporter {
  private inFlight: Promise<void> | undefined;
  private lastSentAt: number | undefined;
  private lastEpochEndAt: number;
  private epochOverheadSeconds = 0;
  /** Reports failed in a row (a report that goes through resets it). */
  private failures = 0;
  private lastWarnAt: number | undefined;

  /** Make it just before training starts: the first epoch's overhead is measured from then. */
  constructor(private readonly opts: ProgressReporterOptions) {
    this.lastEpochEndAt = opts.now();
  }

  /** Offers a sample (the trainer's onBatch); returns at once. */
  offer(p: BatchProgress): void {
    const t = this.opts.now();
    if (this.inFlight || (this.lastSentAt !== undefined && t - this.lastSentAt < this.opts.intervalMs)) return;
    const progress = toFoldProgress(p, t, this.epochOverheadSeconds);
    if (!progress) {
      this.opts.logger.debug('progress sample has no finite loss or pace; not reported', {
        ...this.opts.logFields,
        epoch: p.epoch,
        loss: p.loss,
        imagesPerSec: p.imagesPerSec,
      });
      return;
    }
    this.lastSentAt = t;
    this.inFlight = Promise.resolve()
      .then(() => this.opts.send(progress))
      .then(
        () => {
          this.failures = 0;
        },
        (err: unknown) => this.failed(err, p.epoch),
      )
      .finally(() => {
        this.inFlight = undefined;
      });
  }

  private failed(err: unknown, epoch: number): void {
    this.failures += 1;
    const code = grpcCodeName(err);
    const fields = { ...this.opts.logFields, epoch, ...(code ? { code } : {}), failures: this.failures, error: describeError(err) };
    const t = this.opts.now();
    if (this.failures >= PROGRESS_FAILURES_BEFORE_WARN && (this.lastWarnAt === undefined || t - this.lastWarnAt >= (this.opts.warnEveryMs ?? 60_000))) {
      this.lastWarnAt = t;
      this.opts.logger.warn('progress reports keep failing; dropped (training goes on, but watchers see no progress)', fields);
    } else this.opts.logger.debug('progress report failed; dropped', fields);
  }

  /**
   * Marks the end of an epoch (after its validation pass) that trained for
   * `trainingSeconds`. The wall time since the previous epoch end (or since
   * the reporter was made) minus the training time is the overhead per
   * epoch the ETA adds from then on.
   */
  epochEnded(trainingSeconds: number): void {
    const t = this.opts.now();
    if (Number.isFinite(trainingSeconds)) {
      this.epochOverheadSeconds = Math.max(0, (t - this.lastEpochEndAt) / 1000 - trainingSeconds);
    }
    this.lastEpochEndAt = t;
  }

  /** Resolves once the report in flight, if any, has settled (it never rejects). */
  async idle(): Promise<void> {
    await this.inFlight;
  }
}
