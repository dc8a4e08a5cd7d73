import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FoldState, Run, RunState } from '@cvc/proto';
import { main } from '@cvc/cli';
import { captureEnv, startLocalCluster } from '@cvc/cli/testing';
import { getRun, importFashion, isFinal, runClient, storeOf, submitFashionRun, until } from './helpers.js';

test('a run cancelled mid-training: its workers stop and take new work, unfinished folds CANCELLED, checkpoints kept, summary.json records it', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-e2e-cancel-'));
  const cluster = await startLocalCluster({ dir, workers: 2, backend: 'wasm', ackWaitMs: 10_000 });
  const c = runClient(cluster);
  try {
    await importFashion(cluster, 2, 200);
    const runId = await submitFashionRun(cluster, 2, 50);
    await until(
      'both folds past their first epoch',
      () => getRun(c, runId),
      (r) => r.folds.every((f) => f.epochReports >= 1 && f.lastCheckpointEpoch >= 1),
      120_000,
    );

    const env = captureEnv(dir);
    assert.equal(await main(['run', 'cancel', runId, '--json', '--cluster', join(dir, 'cluster.json')], env), 0, env.err());
    const printed = Run.fromJSON(JSON.parse(env.out()));
    assert.equal(printed.state, RunState.RUN_STATE_CANCELLED, 'the cancel answers once its clean-up is recorded');
    const run = await getRun(c, runId);
    assert.equal(run.state, RunState.RUN_STATE_CANCELLED);
    assert.deepEqual(
      run.folds.map((f) => f.state),
      [FoldState.FOLD_STATE_CANCELLED, FoldState.FOLD_STATE_CANCELLED],
    );
    assert.ok(run.folds.every((f) => f.progress === undefined));

    // The workers drop the cancelled folds at their next call and are free for the next run.
    const next = await submitFashionRun(cluster, 2, 1);
    const done = await until('the next run to finish', () => getRun(c, next), isFinal, 240_000);
    assert.equal(done.state, RunState.RUN_STATE_SUCCEEDED, done.error);
    const after = await getRun(c, runId);
    assert.equal(after.state, RunState.RUN_STATE_CANCELLED);
    for (const f of after.folds) assert.ok(f.epochReports < 50, `fold ${f.fold} stopped training (${f.epochReports} epochs)`);

    // Nothing the cancelled run trained is lost; its summary.json says what happened.
    const store = storeOf(cluster);
    for (const f of after.folds) assert.ok((await store.list(`runs/${runId}/fold-${f.fold}/checkpoints/`)).length >= 1, `fold ${f.fold} keeps its checkpoints`);
    const summary = Run.fromJSON(JSON.parse(new TextDecoder().decode(await store.getBytes(`runs/${runId}/summary.json`))));
    assert.equal(summary.state, RunState.RUN_STATE_CANCELLED);
    assert.deepEqual(
      summary.folds.map((f) => f.state),
      [FoldState.FOLD_STATE_CANCELLED, FoldState.FOLD_STATE_CANCELLED],
    );
    assert.deepEqual(await store.list(`runs/${runId}/encoder/`), [], 'a cancelled run exports no encoder');
  } finally {
    c.close();
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
