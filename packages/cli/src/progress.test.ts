import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { FoldState, Run, RunState } from '@cvc/proto';
import { Progress } from './progress.js';
import { RunProgress, renderRun, runJson } from './run-cmd.js';

function sink(): { stream: PassThrough; text(): string } {
  const stream = new PassThrough();
  let t = '';
  stream.on('data', (c: Buffer) => (t += c.toString()));
  return { stream, text: () => t };
}

/** A run of 3 epochs: fold 0 in epoch 2 at 1600 of 4800 images, fold 1 fresh (pending, no attempt yet). */
function runningRun(images = 1600): Run {
  return Run.fromPartial({
    id: 'r-test',
    state: RunState.RUN_STATE_RUNNING,
    spec: { dataset: 'fashion-mnist', model: 'seed-mnist', epochs: 3, folds: 2 },
    folds: [
      {
        fold: 0,
        state: FoldState.FOLD_STATE_RUNNING,
        attempts: 1,
        history: [{ epoch: 1, loss: 0.5, valLoss: 0.25, imagesPerSec: 400, seconds: 12 }],
        progress: { epoch: 2, epochs: 3, images, totalImages: 4800, imagesPerSec: 400, loss: 0.4, etaSeconds: 20, updatedAtMs: 1 },
      },
      { fold: 1, state: FoldState.FOLD_STATE_PENDING },
    ],
  });
}

test('without a terminal, bars are plain lines: one per label change, throttled while only counts change', () => {
  const out = sink();
  const p = new Progress(out.stream, { plainIntervalMs: 60_000 });
  assert.equal(p.interactive, false);
  p.set('a', { label: 'fold 0 epoch 1/2', value: 0, total: 10, detail: 'images' });
  p.set('a', { label: 'fold 0 epoch 1/2', value: 5, total: 10, detail: 'images' });
  p.set('a', { label: 'fold 0 epoch 2/2', value: 0, total: 10, detail: 'images' });
  p.log('a permanent line');
  p.stop();
  assert.equal(out.text(), 'fold 0 epoch 1/2 0/10 images\nfold 0 epoch 2/2 0/10 images\na permanent line\n');
  assert.doesNotMatch(out.text(), /[\r\x1b]/);
});

test('without a terminal, stop() logs the last state a throttle held back', () => {
  const out = sink();
  const p = new Progress(out.stream, { plainIntervalMs: 60_000 });
  p.set('d', { label: 'checkpoint', value: 0.1, total: 2.4, detail: 'MB' });
  p.set('d', { label: 'checkpoint', value: 1.2, total: 2.4, detail: 'MB' });
  p.set('d', { label: 'checkpoint', value: 2.4, total: 2.4, detail: 'MB' });
  p.stop();
  p.stop();
  assert.equal(out.text(), 'checkpoint 0.1/2.4 MB\ncheckpoint 2.4/2.4 MB\n');
});

test('without a terminal and no throttle, every change prints and an unchanged bar does not', () => {
  const out = sink();
  const p = new Progress(out.stream, { plainIntervalMs: 0 });
  p.set('a', { label: 'x', value: 1, total: 3 });
  p.set('a', { label: 'x', value: 1, total: 3 });
  p.set('a', { label: 'x', value: 2, total: 3 });
  p.stop();
  assert.equal(out.text(), 'x 1/3\nx 2/3\n');
});

test('on a terminal, cli-progress draws the bars in place', () => {
  const out = sink();
  const p = new Progress(out.stream, { forceTty: true });
  assert.equal(p.interactive, true);
  p.set('a', { label: 'fold 0 epoch 1/2', value: 5, total: 10, detail: 'images' });
  p.stop();
  assert.match(out.text(), /fold 0 epoch 1\/2 \[.+\] 5\/10 images/);
});

/** The screen a terminal shows after `raw`: \r, \n and the cursor/erase sequences cli-progress writes. */
function screen(raw: string): string[] {
  const lines = [''];
  let y = 0;
  let x = 0;
  for (const m of raw.matchAll(/\x1b\[(\??)(\d*)([A-Za-z])|\r|\n|[^\x1b\r\n]+/g)) {
    const t = m[0];
    if (t === '\r') x = 0;
    else if (t === '\n') {
      y++;
      x = 0;
      while (lines.length <= y) lines.push('');
    } else if (t.startsWith('\x1b')) {
      if (m[1]) continue;
      const n = m[2] ? Number(m[2]) : 1;
      const line = lines[y] ?? '';
      if (m[3] === 'A') y = Math.max(0, y - n);
      else if (m[3] === 'B') y += n;
      else if (m[3] === 'G') x = n - 1;
      else if (m[3] === 'K') lines[y] = line.slice(0, x);
      else if (m[3] === 'J') lines.splice(y, lines.length, line.slice(0, x));
    } else {
      const line = (lines[y] ?? '').padEnd(x);
      lines[y] = line.slice(0, x) + t + line.slice(x + t.length);
      x += t.length;
    }
  }
  return lines.map((l) => l.trimEnd()).filter((l) => l !== '');
}

test('on a terminal, logged lines stay on screen above the bars (an epoch line replaces its bar)', async () => {
  const out = sink();
  Object.assign(out.stream, { isTTY: true, columns: 120 });
  const p = new Progress(out.stream);
  p.log('backend: wasm');
  p.set('fold 0', { label: 'fold 0 epoch 1/2', value: 50, total: 100, detail: 'images' });
  p.remove('fold 0');
  p.log('fold 0 epoch 1/2  loss 0.5');
  p.set('fold 0', { label: 'fold 0 epoch 2/2', value: 20, total: 100, detail: 'images' });
  await new Promise((r) => setTimeout(r, 250));
  p.set('fold 0', { label: 'fold 0 epoch 2/2', value: 60, total: 100, detail: 'images' });
  p.stop();
  const shown = screen(out.text());
  assert.equal(shown[0], 'backend: wasm');
  assert.equal(shown[1], 'fold 0 epoch 1/2  loss 0.5');
  assert.match(shown[2] ?? '', /^fold 0 epoch 2\/2 \[.*\] 60\/100 images$/);
  assert.equal(shown.length, 3, shown.join('\n'));
});

test('run watch shows progress inside an epoch: images done/total, images/s and the ETA per fold', () => {
  const out = sink();
  const bars = new RunProgress(out.stream, { plainIntervalMs: 0 });
  bars.update(runningRun(1600));
  bars.update(runningRun(3200));
  bars.stop();
  const lines = out.text().trim().split('\n');
  assert.deepEqual(lines, [
    'fold 0 epoch 2/3 1600/4800 images  400 img/s  eta 20.0s  loss 0.40000  val_loss 0.25000',
    'fold 1 pending 0/3 epochs',
    'fold 0 epoch 2/3 3200/4800 images  400 img/s  eta 20.0s  loss 0.40000  val_loss 0.25000',
  ]);
});

test('run show prints the progress inside the current epoch', () => {
  const text = renderRun(runningRun());
  assert.match(text, /in epoch/);
  assert.match(text, /epoch 2: 1600\/4800 images, 400 img\/s, eta 20\.0s/);
});

test('--json output carries every field: fold 0 has its fold key, a fresh fold its attempts', () => {
  const json = JSON.parse(JSON.stringify(runJson(runningRun()))) as { folds: Record<string, unknown>[] };
  assert.equal(json.folds[0]?.['fold'], 0);
  assert.equal(json.folds[1]?.['fold'], 1);
  assert.equal(json.folds[1]?.['attempts'], 0);
  assert.deepEqual(json.folds[1]?.['history'], []);
  assert.equal((json.folds[0]?.['progress'] as Record<string, unknown>)['images'], 1600);
});

test('run show says when a fold could not resume from its checkpoint and where it restarted', () => {
  const run = runningRun();
  assert.doesNotMatch(renderRun(run), /could not be used/);
  const note = 'checkpoint runs/r-test/fold-0/epoch-2.ckpt (epoch 2) could not be used: CHECKPOINT_CORRUPT bad checksum; restarted from epoch 1';
  const folds = run.folds.map((f) => (f.fold === 0 ? { ...f, checkpointFallback: note } : f));
  assert.match(renderRun({ ...run, folds }), new RegExp(`\\nfold 0: ${note.replace(/[.()]/g, '\\$&')}\\n`));
});
