import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createWorkerMetrics } from './worker-metrics.js';
import { ManualClock } from './testing.js';

test("a worker's per-task series leave /metrics a retention after the task ended; the task in progress keeps its own", async () => {
  const clock = new ManualClock();
  const m = createWorkerMetrics('w1', { retentionMs: 600_000, clock });
  const epoch = { loss: 0.25, valLoss: 0.5, imagesPerSec: 100 };
  m.epoch({ runId: 'r1', fold: 0 }, epoch);
  m.trained({ runId: 'r1', fold: 0 }, 400);
  m.clusterProgress('j1', 'dec', { iteration: 140, loss: 0.3 });
  m.taskEnded({ runId: 'r1', fold: 0 });
  m.taskEnded({ runId: '', fold: 0, jobId: 'j1' });
  m.epoch({ runId: 'r1', fold: 1 }, epoch);
  m.trained({ runId: 'r1', fold: 1 }, 400);
  clock.advance(599_999);
  let text = await m.registry.metrics();
  assert.match(text, /^cvc_worker_val_loss\{run="r1",fold="0",worker="w1"\} 0.5$/m, 'kept for the retention, to be scraped');
  assert.match(text, /^cvc_worker_cluster_job_loss\{job="j1",method="dec",worker="w1"\} 0.3$/m);
  clock.advance(1);
  text = await m.registry.metrics();
  assert.doesNotMatch(text, /fold="0"/, 'all four series of the ended fold task went');
  assert.doesNotMatch(text, /job="j1"/);
  for (const name of ['train_loss', 'val_loss', 'images_per_second', 'images_trained_total']) {
    assert.match(text, new RegExp(`^cvc_worker_${name}\\{run="r1",fold="1",worker="w1"\\} `, 'm'), `${name} of the live task stays`);
  }
  m.epoch({ runId: 'r1', fold: 0 }, epoch);
  m.trained({ runId: 'r1', fold: 0 }, 400);
  assert.match(
    await m.registry.metrics(),
    /^cvc_worker_images_trained_total\{run="r1",fold="0",worker="w1"\} 400$/m,
    'a fold redelivered here later starts again',
  );
  m.retention.close();
});
