import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { createSweepMetrics } from './sweep-metrics.js';

test('sweep gauges: trials by state, best scores and decisions per sweep; a state left empty is removed', async () => {
  const registry = new Registry();
  const m = createSweepMetrics(registry);
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
