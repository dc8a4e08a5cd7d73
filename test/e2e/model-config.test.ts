import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RunState } from '@cvc/proto';
import { main } from '@cvc/cli';
import { captureEnv, startLocalCluster } from '@cvc/cli/testing';
import { getRun, importFashion, isFinal, runClient, storeOf, until } from './helpers.js';

test('a custom autoencoder config (--model-config FILE) trains through the cluster; the stored spec and the encoder record it', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-e2e-model-'));
  const cluster = await startLocalCluster({ dir, workers: 1, backend: 'wasm' });
  const c = runClient(cluster);
  try {
    await importFashion(cluster, 2, 60);
    const file = join(dir, 'cae.json');
    // Strided convolutions, BN before the activation, he init, sigmoid output and bce: nothing a seed preset has.
    await writeFile(
      file,
      JSON.stringify({
        encoder: [
          { filters: 8, stride: 2, batchNorm: 'before' },
          { filters: 8, pool: 2 },
        ],
        codeSize: 6,
        init: 'he',
        outputActivation: 'sigmoid',
        loss: 'bce',
      }),
    );
    const clusterFile = join(dir, 'cluster.json');
    const env = captureEnv(dir);
    const args = ['run', 'submit', '--dataset', 'fashion-mnist', '--model-config', file, '--folds', '2', '--epochs', '1', '--cluster', clusterFile];
    assert.equal(await main(args, env), 0, env.err());
    const runId = env.out().trim();
    const done = await until('the custom run to finish', () => getRun(c, runId), isFinal, 240_000);
    assert.equal(done.state, RunState.RUN_STATE_SUCCEEDED, done.error);
    assert.equal(done.spec?.model, 'custom');
    const stored = JSON.parse(done.spec?.modelConfigJson ?? '') as { input: unknown; init: string; loss: string };
    assert.deepEqual(stored.input, { height: 28, width: 28, channels: 1 });
    assert.deepEqual([stored.init, stored.loss], ['he-normal', 'bce']);
    for (const f of done.folds) assert.ok(Number.isFinite(f.test?.loss), `fold ${f.fold} has a finite test loss`);
    const modelJson = JSON.parse(new TextDecoder().decode(await storeOf(cluster).getBytes(`runs/${runId}/encoder/model.json`))) as {
      userDefinedMetadata: { cvc: { model: string; modelConfig: unknown } };
    };
    assert.equal(modelJson.userDefinedMetadata.cvc.model, 'custom');
    assert.deepEqual(modelJson.userDefinedMetadata.cvc.modelConfig, stored);

    // A bad config file is refused by the CLI naming the file and the field, before any connection.
    await writeFile(file, JSON.stringify({ encoder: [{ filters: 8 }, { filters: 0 }], codeSize: 6 }));
    const bad = captureEnv(dir);
    assert.equal(await main(args, bad), 2);
    assert.match(bad.err(), /cae\.json: encoder\[1\]\.filters: must be >= 1/);
  } finally {
    c.close();
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
