import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FoldState, RunState } from '@cvc/proto';
import { captureEnv, main, startLocalCluster } from '@cvc/cli';
import { getRun, runClient, until } from './helpers.js';

test('nats-server restarted on its JetStream directory mid-run: tasks and run state survive, every epoch reported once', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-e2e-nats-'));
  const cluster = await startLocalCluster({ dir, workers: 2, backend: 'wasm', ackWaitMs: 5000 });
  const c = runClient(cluster);
  try {
    const clusterFile = join(dir, 'cluster.json');
    assert.equal(await main(['dataset', 'import', 'fashion-mnist', '--folds', '3', '--limit', '300', '--cluster', clusterFile], captureEnv(dir)), 0);
    const env = captureEnv(dir);
    assert.equal(await main(['run', 'submit', '--dataset', 'fashion-mnist', '--model', 'seed-mnist', '--folds', '3', '--epochs', '3', '--cluster', clusterFile], env), 0, env.err());
    const runId = env.out().trim();
    await until('an epoch reported', () => getRun(c, runId), (r) => r.folds.some((f) => f.history.length >= 1));
    await cluster.restartNats(2000);
    const done = await until('the run to finish', () => getRun(c, runId).catch(() => undefined), (r) => r !== undefined && r.state !== RunState.RUN_STATE_PENDING && r.state !== RunState.RUN_STATE_RUNNING, 240_000);
    assert.ok(done);
    assert.equal(done.state, RunState.RUN_STATE_SUCCEEDED, done.error);
    for (const f of done.folds) {
      assert.equal(f.state, FoldState.FOLD_STATE_SUCCEEDED);
      assert.deepEqual(f.history.map((h) => h.epoch), [1, 2, 3]);
      // A redelivery (heartbeats could not reach the broker) may redo at most the epoch in flight.
      assert.ok(f.epochReports >= 3 && f.epochReports <= 3 + (f.attempts - 1), `fold ${f.fold}: ${f.epochReports} reports in ${f.attempts} attempts`);
    }
  } finally {
    c.close();
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
