import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCoordinatorMetrics } from '@cvc/metrics';
import { ManualClock } from '@cvc/metrics/testing';
import { ClusterJob, ClusterJobState } from '@cvc/proto';
import { jobView } from './cluster-jobs-setup.js';

test("a running job stored before the coordinator started gets its gauges at once, from its latest refresh and its spec's method", async () => {
  const m = createCoordinatorMetrics({ retentionMs: 600_000, clock: new ManualClock() });
  const job = ClusterJob.fromPartial({
    id: 'j1',
    state: ClusterJobState.CLUSTER_JOB_STATE_RUNNING,
    spec: { method: 'dcec' },
    history: [
      { iteration: 140, loss: 0.5, changed: 0.02 },
      { iteration: 280, loss: 0.25, changed: 0.01, acc: 0.6 },
    ],
  });
  m.clusterJobs.update(jobView(job));
  const text = await m.registry.metrics();
  assert.match(text, /^cvc_cluster_job_iteration\{job="j1",method="dcec"\} 280$/m);
  assert.match(text, /^cvc_cluster_job_accuracy\{job="j1",method="dcec"\} 0.6$/m);
  assert.match(text, /^cvc_cluster_jobs\{state="running"\} 1$/m);
  m.retention.close();
});
