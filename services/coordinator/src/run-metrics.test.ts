import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCoordinatorMetrics } from '@cvc/metrics';
import { ManualClock } from '@cvc/metrics/testing';
import { FoldState, Run, RunState } from '@cvc/proto';
import { createRunMetrics } from './run-metrics.js';

const run = (id: string, state: RunState, folds: { state: FoldState; epochs: number }[]): Run =>
  Run.fromPartial({
    id,
    state,
    folds: folds.map((f, fold) => ({
      fold,
      state: f.state,
      attempts: 1,
      epochReports: f.epochs,
      history: Array.from({ length: f.epochs }, (_, i) => ({ epoch: i + 1, loss: 0.5 / (i + 1), valLoss: 0.6 / (i + 1) })),
    })),
  });
const { RUN_STATE_RUNNING: RUNNING, RUN_STATE_SUCCEEDED: SUCCEEDED } = RunState;
const { FOLD_STATE_RUNNING: F_RUNNING, FOLD_STATE_SUCCEEDED: F_SUCCEEDED } = FoldState;

test("an ended run's per-fold series leave /metrics a retention after it ended, a running one's stay; runs stored ended only count", async () => {
  const clock = new ManualClock();
  const m = createCoordinatorMetrics({ retentionMs: 600_000, clock });
  const runs = createRunMetrics(m, () => 1_000_000);
  // Stored before this coordinator started: one ended, one running (its series are set now, not at its next report).
  runs.update(run('old', SUCCEEDED, [{ state: F_SUCCEEDED, epochs: 4 }]));
  runs.update(run('live', RUNNING, [{ state: F_RUNNING, epochs: 1 }]));
  runs.update(
    run('done', RUNNING, [
      { state: F_RUNNING, epochs: 3 },
      { state: F_SUCCEEDED, epochs: 4 },
    ]),
  );
  runs.update(
    run('done', SUCCEEDED, [
      { state: F_SUCCEEDED, epochs: 4 },
      { state: F_SUCCEEDED, epochs: 4 },
    ]),
  );
  let text = await m.registry.metrics();
  assert.doesNotMatch(text, /run="old"/, 'its history is in Prometheus already');
  assert.match(text, /^cvc_fold_epochs_done\{run="done",fold="0"\} 4$/m, 'the final values, kept to be scraped');
  assert.match(text, /^cvc_fold_last_progress_timestamp_seconds\{run="live",fold="0"\} 1000$/m);
  assert.doesNotMatch(text, /^cvc_fold_last_progress_timestamp_seconds\{run="done"/m, 'only running folds have it');
  assert.match(text, /^cvc_runs\{state="succeeded"\} 2$/m);
  clock.advance(600_000);
  text = await m.registry.metrics();
  assert.doesNotMatch(text, /run="done"/);
  for (const name of ['cvc_fold_train_loss', 'cvc_fold_val_loss', 'cvc_fold_epochs_done', 'cvc_fold_last_progress_timestamp_seconds'])
    assert.match(text, new RegExp(`^${name}\\{run="live",fold="0"\\} `, 'm'), `${name} of the running run stays`);
  assert.match(text, /^cvc_runs\{state="succeeded"\} 2$/m, 'every run still counts by state');
  assert.match(text, /^cvc_folds\{state="succeeded"\} 3$/m);
  runs.update(
    run('done', SUCCEEDED, [
      { state: F_SUCCEEDED, epochs: 4 },
      { state: F_SUCCEEDED, epochs: 4 },
    ]),
  );
  assert.doesNotMatch(await m.registry.metrics(), /run="done"/, 'a later write of an ended run does not bring its series back');
  m.retention.close();
});

test("a running fold's last-progress time moves with its progress inside an epoch (images done), not only with epoch reports", async () => {
  let now = 1_000_000;
  const m = createCoordinatorMetrics({ retentionMs: 600_000, clock: new ManualClock() });
  const runs = createRunMetrics(m, () => now);
  const at = (images: number): Run => {
    const r = run('long', RUNNING, [{ state: F_RUNNING, epochs: 0 }]);
    return {
      ...r,
      folds: r.folds.map((f) => ({
        ...f,
        progress: { epoch: 1, epochs: 2, images, totalImages: 1000, imagesPerSec: 1, loss: 0.5, etaSeconds: 9, updatedAtMs: now },
      })),
    };
  };
  const stamp = async (): Promise<string | undefined> =>
    /^cvc_fold_last_progress_timestamp_seconds\{run="long",fold="0"\} (\d+)$/m.exec(await m.registry.metrics())?.[1];
  runs.update(at(100));
  assert.equal(await stamp(), '1000');
  now = 2_000_000;
  runs.update(at(200));
  assert.equal(await stamp(), '2000', 'images done within the epoch are progress');
  now = 3_000_000;
  runs.update(at(200));
  assert.equal(await stamp(), '2000', 'the same progress again is not');
});
