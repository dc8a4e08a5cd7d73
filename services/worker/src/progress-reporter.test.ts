import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Logger } from '@cvc/core';
import type { BatchProgress } from '@cvc/model';
import type { FoldProgress } from '@cvc/proto';
import { ProgressReporter, foldEtaSeconds, toFoldProgress } from './progress-reporter.js';

const sample = (over: Partial<BatchProgress> = {}): BatchProgress => ({
  epoch: 2,
  epochs: 5,
  images: 600,
  totalImages: 1000,
  loss: 0.03,
  imagesPerSec: 200,
  ...over,
});

test('the fold ETA counts the rest of this epoch and every later epoch at the current pace', () => {
  // 400 images left now + 3 epochs of 1000, at 200 images/s.
  assert.equal(foldEtaSeconds(sample()), (400 + 3000) / 200);
  assert.equal(foldEtaSeconds(sample({ epoch: 5, images: 1000 })), 0);
  assert.equal(foldEtaSeconds(sample({ imagesPerSec: 0 })), undefined);
  assert.equal(foldEtaSeconds(sample({ imagesPerSec: Infinity })), undefined);
});

test('the ETA adds the measured time an epoch spends outside training, for this epoch and each later one', () => {
  assert.equal(foldEtaSeconds(sample(), 2), (400 + 3000) / 200 + 2 * 4);
  assert.equal(foldEtaSeconds(sample({ epoch: 5, images: 1000 }), 2), 2, 'the last epoch still has its validation to run');
  assert.equal(foldEtaSeconds(sample(), -1), (400 + 3000) / 200);
});

test('the reporter learns the epoch overhead from the wall time between epoch ends minus the training time', async () => {
  let clock = 0;
  const sent: FoldProgress[] = [];
  const r = new ProgressReporter({
    send: (p) => Promise.resolve(void sent.push(p)),
    intervalMs: 1,
    now: () => clock,
    logger: { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} },
  });
  r.offer(sample());
  await r.idle();
  clock = 10_000;
  r.epochEnded(8); // 10 s since the reporter was made (training started), 8 s of it training: 2 s elsewhere
  r.offer(sample());
  await r.idle();
  clock = 22_000;
  r.epochEnded(9); // 12 s since the last epoch end, 9 s of it training: 3 s elsewhere
  r.offer(sample());
  await r.idle();
  assert.deepEqual(
    sent.map((p) => p.etaSeconds),
    [17, 17 + 2 * 4, 17 + 3 * 4],
  );
});

test('a sample with a non-finite loss or pace has no wire form; a good one carries every field', () => {
  assert.equal(toFoldProgress(sample({ loss: NaN }), 1), undefined);
  assert.equal(toFoldProgress(sample({ imagesPerSec: NaN }), 1), undefined);
  assert.deepEqual(toFoldProgress(sample(), 1234.6), {
    epoch: 2,
    epochs: 5,
    images: 600,
    totalImages: 1000,
    imagesPerSec: 200,
    loss: 0.03,
    etaSeconds: 17,
    updatedAtMs: 1235,
  });
});

test('the reporter sends at most once per interval, skips while one is in flight, and swallows failures at debug', async () => {
  let clock = 0;
  const sent: FoldProgress[] = [];
  let release!: () => void;
  const gate = new Promise<void>((res) => (release = res));
  const debug: string[] = [];
  const logger: Logger = { debug: (m) => void debug.push(m), info: () => {}, warn: () => {}, error: () => {} };
  const r = new ProgressReporter({
    send: (p) => {
      sent.push(p);
      if (sent.length === 3) return Promise.reject(new Error('unreachable'));
      return gate;
    },
    intervalMs: 1000,
    now: () => clock,
    logger,
  });
  r.offer(sample({ images: 100 }));
  clock = 5000;
  r.offer(sample({ images: 200 })); // in flight: dropped
  release();
  await r.idle();
  r.offer(sample({ images: 300 }));
  clock = 5999;
  await r.idle();
  r.offer(sample({ images: 400 })); // under the interval: dropped
  clock = 6000;
  r.offer(sample({ images: 500 })); // fails
  await r.idle();
  clock = 7000;
  r.offer(sample({ loss: Infinity })); // nothing to send
  assert.deepEqual(
    sent.map((p) => p.images),
    [100, 300, 500],
  );
  assert.deepEqual(debug, ['progress report failed; dropped', 'progress sample has no finite loss or pace; not reported']);
});

test('reports that keep failing are logged at warn, at most once per warnEveryMs, with the gRPC code and the failures in a row; a report that goes through resets the count', async () => {
  let clock = 0;
  const lines: { level: string; msg: string; fields?: Record<string, unknown> }[] = [];
  const at = (level: string) => (msg: string, fields?: Record<string, unknown>) => void lines.push({ level, msg, ...(fields ? { fields } : {}) });
  const logger: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
  let refuse = true;
  const r = new ProgressReporter({
    send: () => (refuse ? Promise.reject(Object.assign(new Error('3 INVALID_ARGUMENT: progress.loss'), { code: 3 })) : Promise.resolve({})),
    intervalMs: 1000,
    now: () => clock,
    logger,
    logFields: { run: 'run-1', fold: 2 },
    warnEveryMs: 10_000,
  });
  const send = async (): Promise<void> => {
    clock += 1000;
    r.offer(sample());
    await r.idle();
  };
  for (let i = 0; i < 8; i++) await send(); // failures 1..8 at t = 1..8 s
  const warns = (): typeof lines => lines.filter((l) => l.level === 'warn');
  assert.equal(warns().length, 1, 'the third failure warns; the next ones within 10 s do not');
  assert.match(warns()[0]?.msg ?? '', /progress reports keep failing/);
  assert.deepEqual(
    { run: warns()[0]?.fields?.['run'], fold: warns()[0]?.fields?.['fold'], code: warns()[0]?.fields?.['code'], failures: warns()[0]?.fields?.['failures'] },
    { run: 'run-1', fold: 2, code: 'INVALID_ARGUMENT', failures: 3 },
  );
  assert.equal(lines.filter((l) => l.level === 'debug').length, 7);
  for (let i = 0; i < 5; i++) await send(); // t = 13 s: 10 s after the first warning
  assert.equal(warns().length, 2);
  assert.equal(warns()[1]?.fields?.['failures'], 13);
  refuse = false;
  await send();
  refuse = true;
  clock += 60_000;
  await send();
  await send();
  assert.equal(warns().length, 2, 'two failures after a report went through are not yet a warning');
  await send();
  assert.equal(warns().length, 3);
  assert.equal(warns()[2]?.fields?.['failures'], 3);
});
