import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FoldState, Run, RunState } from '@cvc/proto';
import { startLocalCluster } from '@cvc/cli/testing';
import { getRun, importFashion, isFinal, runClient, storeOf, submitFashionRun, until } from './helpers.js';

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

test('coordinator SIGKILLed inside finalisation: the restarted one finishes the run with summary, encoder and report, every epoch reported once', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-e2e-finalise-'));
  // The export is held (CVC_FAULT_HOLD_FINALIZE_MS) so the kill surely lands inside finalisation.
  const cluster = await startLocalCluster({ dir, workers: 2, backend: 'wasm', ackWaitMs: 10_000, coordinatorEnv: { CVC_FAULT_HOLD_FINALIZE_MS: '600000' } });
  let c = runClient(cluster);
  const coordinatorLog = join(dir, 'logs', 'coordinator.log');
  const logLines = async (): Promise<{ msg: string; run?: string }[]> =>
    (await readFile(coordinatorLog, 'utf8'))
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg: string; run?: string });
  try {
    await importFashion(cluster, 2, 200);
    const runId = await submitFashionRun(cluster, 2, 1);
    const finalizing = await until(
      'the run to be finalising',
      () => getRun(c, runId),
      (r) => r.state === RunState.RUN_STATE_FINALIZING || isFinal(r),
      240_000,
    );
    assert.equal(finalizing.state, RunState.RUN_STATE_FINALIZING, finalizing.error);
    assert.deepEqual(
      finalizing.folds.map((f) => f.state),
      [FoldState.FOLD_STATE_SUCCEEDED, FoldState.FOLD_STATE_SUCCEEDED],
      'FINALIZING is recorded with the last fold',
    );
    await until('"finalising run" logged', logLines, (lines) => lines.some((l) => l.msg === 'finalising run' && l.run === runId), 30_000);
    const store = storeOf(cluster);
    assert.deepEqual(await store.list(`runs/${runId}/encoder/`), [], 'the held export has written nothing yet');
    assert.equal(await store.stat(`runs/${runId}/summary.json`), undefined);

    c.close();
    await cluster.restartCoordinator({ CVC_FAULT_HOLD_FINALIZE_MS: '0' });
    c = runClient(cluster);
    const done = await until('the run to finish', () => getRun(c, runId).catch(() => undefined), isFinal, 120_000);
    assert.ok(done);
    assert.equal(done.state, RunState.RUN_STATE_SUCCEEDED, done.error);
    assert.equal(done.error, '');
    assert.ok(done.summary, 'a summary');
    assert.ok([0, 1].includes(done.summary.bestFold));
    for (const m of [done.summary.trainLoss, done.summary.valLoss, done.summary.testLoss])
      assert.ok(m && Number.isFinite(m.mean) && m.mean > 0, JSON.stringify(m));
    assert.equal(done.summary.encoder, `runs/${runId}/encoder`);
    for (const f of done.folds) {
      assert.equal(f.state, FoldState.FOLD_STATE_SUCCEEDED);
      assert.equal(f.attempts, 1, `fold ${f.fold} trained once`);
      assert.equal(f.epochReports, 1, `fold ${f.fold}: its epoch reported once`);
      assert.deepEqual(
        f.history.map((h) => h.epoch),
        [1],
      );
    }
    // The encoder, the report pictures and summary.json, from the restarted coordinator.
    const model = JSON.parse(new TextDecoder().decode(await store.getBytes(`runs/${runId}/encoder/model.json`))) as {
      modelTopology?: unknown;
      weightsManifest?: unknown;
    };
    assert.ok(model.modelTopology && model.weightsManifest, 'a TensorFlow.js layers model');
    assert.ok(((await store.stat(`runs/${runId}/encoder/weights.bin`))?.size ?? 0) > 0);
    for (const p of ['originals', 'reconstructions', 'loss-curves']) {
      const png = await store.getBytes(`runs/${runId}/report/${p}.png`);
      assert.deepEqual([...png.subarray(0, 8)], PNG_SIGNATURE, `${p}.png is a PNG`);
    }
    const summary = Run.fromJSON(JSON.parse(new TextDecoder().decode(await store.getBytes(`runs/${runId}/summary.json`))));
    assert.equal(summary.state, RunState.RUN_STATE_SUCCEEDED);
    assert.equal(summary.summary?.bestFold, done.summary.bestFold);
    const lines = await logLines();
    assert.ok(
      lines.some((l) => l.msg === 'recovering runs'),
      'the restarted coordinator took the run up on start',
    );
    assert.equal(lines.filter((l) => l.msg === 'run finished' && l.run === runId).length, 1, 'finished once');
  } finally {
    c.close();
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
