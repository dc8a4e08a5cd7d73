import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCoordinatorMetrics } from './index.js';

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
