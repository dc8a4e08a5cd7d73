import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCoordinatorMetrics } from './index.js';
import { ManualClock } from './testing.js';

test("clustering-job metrics: jobs by state recounted from each job's latest view, per-job refresh gauges, ended jobs counted once", async () => {
  const m = createCoordinatorMetrics();
  const j = m.clusterJobs;
  j.update({ id: 'a', state: 'pending', method: 'dcec' });
  j.update({ id: 'b', state: 'running', method: 'dec', latest: { iteration: 140, loss: 0.5, changed: 0.02 } });
  j.update({ id: 'a', state: 'running', method: 'dcec', latest: { iteration: 280, loss: 0.25, changed: 0.01, acc: 0.61 } });
  j.update({ id: 'b', state: 'succeeded', method: 'dec', latest: { iteration: 420, loss: 0.2, changed: 0.0005 } });
  j.update({ id: 'b', state: 'succeeded', method: 'dec', latest: { iteration: 420, loss: 0.2, changed: 0.0005 } });
  const text = await m.registry.metrics();
  assert.match(text, /^cvc_cluster_jobs\{state="running"\} 1$/m);
  assert.match(text, /^cvc_cluster_jobs\{state="succeeded"\} 1$/m);
  assert.doesNotMatch(text, /^cvc_cluster_jobs\{state="pending"\}/m, 'a job counts in its latest state only');
  assert.match(text, /^cvc_cluster_job_iteration\{job="a",method="dcec"\} 280$/m);
  assert.match(text, /^cvc_cluster_job_loss\{job="b",method="dec"\} 0.2$/m);
  assert.match(text, /^cvc_cluster_job_changed_ratio\{job="a",method="dcec"\} 0.01$/m);
  assert.match(text, /^cvc_cluster_job_accuracy\{job="a",method="dcec"\} 0.61$/m);
  assert.doesNotMatch(text, /^cvc_cluster_job_accuracy\{job="b"/m, 'no accuracy without labels');
  assert.match(text, /^cvc_cluster_jobs_ended_total\{state="succeeded"\} 1$/m);
});

test("an ended job's series leave /metrics after the retention, a running one's stay; a job first seen ended gets none; a method learned later replaces the series", async () => {
  const clock = new ManualClock();
  const m = createCoordinatorMetrics({ retentionMs: 600_000, clock });
  const j = m.clusterJobs;
  const at = (iteration: number) => ({ iteration, loss: 0.5, changed: 0.01, acc: 0.6 });
  j.update({ id: 'old', state: 'succeeded', method: 'dec', latest: at(900) });
  j.update({ id: 'done', state: 'running', method: '', latest: at(140) });
  j.update({ id: 'done', state: 'running', method: 'dcec', latest: at(280) });
  j.update({ id: 'done', state: 'succeeded', method: '', latest: at(420) });
  j.update({ id: 'live', state: 'running', method: 'dec', latest: at(140) });
  let text = await m.registry.metrics();
  assert.match(text, /^cvc_cluster_job_iteration\{job="done",method="dcec"\} 420$/m, 'the final value, kept to be scraped');
  assert.doesNotMatch(text, /job="done",method=""/, 'one series per job: the one without a method went');
  assert.doesNotMatch(text, /job="old"/, 'a job ended before this coordinator saw it has its history in Prometheus');
  assert.match(text, /^cvc_cluster_jobs\{state="succeeded"\} 2$/m, 'it still counts by state');
  clock.advance(600_000);
  text = await m.registry.metrics();
  assert.doesNotMatch(text, /job="done"/);
  assert.match(text, /^cvc_cluster_job_accuracy\{job="live",method="dec"\} 0.6$/m);
  assert.match(text, /^cvc_cluster_job_loss\{job="live",method="dec"\} 0.5$/m);
  assert.match(text, /^cvc_cluster_jobs\{state="succeeded"\} 2$/m);
  j.update({ id: 'done', state: 'succeeded', method: 'dcec', latest: at(420) });
  assert.doesNotMatch(await m.registry.metrics(), /job="done"/, 'a later write of an ended job does not bring its series back');
});
