import { FoldState, type FoldStatus, type Run } from '@cvc/proto';
import type { BarUpdate } from './progress.js';
import { duration, num } from './format.js';

/** A fold state as the CLI prints it: `running`, `succeeded`, ... */
export const foldName = (s: FoldState): string => (FoldState[s] ?? 'UNRECOGNIZED').replace('FOLD_STATE_', '').toLowerCase();

/** The fold's progress inside its current epoch, when it is training one (not stale). */
export function epochInProgress(f: FoldStatus): NonNullable<FoldStatus['progress']> | undefined {
  const p = f.progress;
  if (f.state !== FoldState.FOLD_STATE_RUNNING || !p || p.totalImages <= 0) return undefined;
  return p.epoch === f.history.length + 1 ? p : undefined;
}

/** `3200/48000 images, 450 img/s, eta 4m10s` for a fold inside an epoch, or '' when it is not. */
export function progressText(f: FoldStatus): string {
  const p = epochInProgress(f);
  if (!p) return '';
  return `epoch ${p.epoch}: ${p.images}/${p.totalImages} images, ${p.imagesPerSec.toFixed(0)} img/s, eta ${duration(p.etaSeconds)}`;
}

/**
 * A fold's bar: inside an epoch, images done of the epoch's total with the
 * rate and the fold's ETA; otherwise epochs done of the fold's epochs.
 */
export function foldBar(run: Run, f: FoldStatus): BarUpdate {
  const epochs = run.spec?.epochs ?? 0;
  const last = f.history[f.history.length - 1];
  const val = last ? `val_loss ${num(last.valLoss)}` : '';
  const attempt = f.attempts > 1 ? `(attempt ${f.attempts})` : '';
  const p = epochInProgress(f);
  if (p) {
    const detail = ['images', `${p.imagesPerSec.toFixed(0)} img/s`, `eta ${duration(p.etaSeconds)}`, `loss ${num(p.loss)}`, val, attempt];
    return { label: `fold ${f.fold} epoch ${p.epoch}/${p.epochs || epochs}`, value: p.images, total: p.totalImages, detail: detail.filter(Boolean).join('  ') };
  }
  return { label: `fold ${f.fold} ${foldName(f.state)}`, value: f.history.length, total: epochs, detail: ['epochs', val, attempt].filter(Boolean).join('  ') };
}
