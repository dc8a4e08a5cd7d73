import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { createSweepMetrics } from './sweep-metrics.js';
import { SeriesRetention } from './series-retention.js';
import { ManualClock } from './testing.js';

test('sweep gauges: trials by state, best scores and decisions per sweep; a state left empty is removed', async () => {
  const registry = new Registry();
  const m = createSweepMetrics(registry, new SeriesRetention({ retentionMs: 1000, clock: new ManualClock() }));
  m.update({ id: 's1', trialsByState: { running: 3, queued: 1 }, bestValLoss: undefined, bestRungScore: 0.4, decisions: { stopped: 0, continued: 2 } });
  m.update({ id: 's1', trialsByState: { stopped: 3, succeeded: 1 }, bestValLoss: 0.25, bestRungScore: 0.3, decisions: { stopped: 3, continued: 4 } });
  const text = await registry.metrics();
  assert.match(text, /cvc_sweep_trials\{sweep="s1",state="stopped"\} 3/);
  assert.match(text, /cvc_sweep_trials\{sweep="s1",state="succeeded"\} 1/);
  assert.doesNotMatch(text, /state="running"/, 'no trial is running any more');
  assert.match(text, /cvc_sweep_best_val_loss\{sweep="s1"\} 0.25/);
  assert.match(text, /cvc_sweep_best_rung_score\{sweep="s1"\} 0.3/);
  assert.match(text, /cvc_sweep_decisions\{sweep="s1",outcome="stopped"\} 3/);
});

test("an ended sweep's series leave /metrics after the retention, a running one's stay; a sweep first seen ended gets none", async () => {
  const registry = new Registry();
  const clock = new ManualClock();
  const m = createSweepMetrics(registry, new SeriesRetention({ retentionMs: 60_000, clock }));
  const view = (id: string, final: boolean) => ({
    id,
    trialsByState: { running: 2 },
    bestValLoss: 0.5,
    bestRungScore: 0.4,
    decisions: { stopped: 1, continued: 1 },
    final,
  });
  m.update(view('done', false));
  m.update(view('live', false));
  m.update(view('done', true));
  m.update(view('old', true));
  clock.advance(59_000);
  assert.match(await registry.metrics(), /cvc_sweep_best_val_loss\{sweep="done"\} 0.5/, 'kept for the retention, to be scraped');
  clock.advance(1_000);
  const text = await registry.metrics();
  assert.doesNotMatch(text, /sweep="done"/);
  assert.doesNotMatch(text, /sweep="old"/);
  assert.match(text, /cvc_sweep_trials\{sweep="live",state="running"\} 2/);
  assert.match(text, /cvc_sweep_decisions\{sweep="live",outcome="stopped"\} 1/);
});
