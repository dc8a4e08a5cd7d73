import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FoldState, Run, RunState } from '@cvc/proto';
import { main } from '@cvc/cli';
import { captureEnv, startLocalCluster } from '@cvc/cli/testing';
import { assertNoSecretsInLogs, getRun, importFashion, isFinal, runClient, storeOf, submitFashionRun, until } from './helpers.js';

test('a 5-fold CV runs through the local cluster (nats-server, S3, coordinator, 2 workers); every fold once', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-e2e-cluster-'));
  const cluster = await startLocalCluster({ dir, workers: 2, backend: 'wasm' });
  try {
    const clusterFile = join(dir, 'cluster.json');
    const imp = captureEnv(dir);
    assert.equal(await main(['dataset', 'import', 'fashion-mnist', '--folds', '5', '--limit', '200', '--cluster', clusterFile], imp), 0, imp.err());
    assert.match(imp.out(), /imported at datasets\/fashion-mnist\/[0-9a-f]{16}\/manifest\.json/);

    const env = captureEnv(dir);
    const code = await main(
      ['run', 'submit', '--dataset', 'fashion-mnist', '--model', 'seed-mnist', '--folds', '5', '--epochs', '2', '--watch', '--json', '--cluster', clusterFile],
      env,
    );
    assert.equal(code, 0, env.err());
    const run = Run.fromJSON(JSON.parse(env.out()));
    assert.equal(run.state, RunState.RUN_STATE_SUCCEEDED, run.error);
    assert.equal(run.folds.length, 5);
    const store = storeOf(cluster);
    for (const f of run.folds) {
      assert.equal(f.state, FoldState.FOLD_STATE_SUCCEEDED);
      assert.equal(f.attempts, 1, `fold ${f.fold} ran once`);
      assert.equal(f.epochReports, 2, `fold ${f.fold}: each epoch reported once`);
      assert.deepEqual(
        f.history.map((h) => h.epoch),
        [1, 2],
      );
      assert.equal(f.val?.count, 40);
      assert.equal(f.test?.count, 200);
      const keys = await store.list(`runs/${run.id}/fold-${f.fold}/`);
      assert.deepEqual(keys, [
        `runs/${run.id}/fold-${f.fold}/best/attempt-1.ckpt`,
        `runs/${run.id}/fold-${f.fold}/checkpoints/epoch-0001.ckpt`,
        `runs/${run.id}/fold-${f.fold}/checkpoints/epoch-0002.ckpt`,
      ]);
    }
    const s = run.summary;
    assert.ok(s?.valLoss && Number.isFinite(s.valLoss.mean) && s.valLoss.std >= 0);
    const best = run.folds.reduce((b, f) => ((f.val?.loss ?? Infinity) < (b.val?.loss ?? Infinity) ? f : b));
    assert.equal(s.bestFold, best.fold);
    assert.ok(await store.stat(`runs/${run.id}/encoder/model.json`));
    assert.ok(await store.stat(`runs/${run.id}/encoder/weights.bin`));
    assert.ok(await store.stat(`runs/${run.id}/summary.json`));

    // The best fold's encoder, fetched, embedded and clustered.
    const encDir = join(dir, 'enc');
    const fetchEnv = captureEnv(dir);
    assert.equal(await main(['encoder', 'fetch', run.id, '--out', encDir, '--cluster', clusterFile], fetchEnv), 0, fetchEnv.err());
    const meta = JSON.parse(await readFile(join(encDir, 'metadata.json'), 'utf8')) as {
      fold: number;
      codeSize: number;
      inputShape: number[];
      datasetVersion: string;
      losses: { val: number };
    };
    assert.equal(meta.fold, best.fold);
    assert.equal(meta.codeSize, 10);
    assert.deepEqual(meta.inputShape, [28, 28, 1]);
    assert.equal(meta.datasetVersion, run.datasetVersion);
    assert.equal(meta.losses.val, best.val?.loss);
    const byAcc = captureEnv(dir);
    assert.equal(
      await main(['encoder', 'fetch', run.id, '--by', 'cluster-acc', '--out', join(dir, 'enc-acc'), '--cluster', clusterFile], byAcc),
      0,
      byAcc.err(),
    );
    assert.equal((byAcc.err().match(/k-means accuracy on the test split/g) ?? []).length, 5);
    const badFold = captureEnv(dir);
    assert.equal(await main(['encoder', 'fetch', run.id, '--fold', '9', '--out', join(dir, 'x'), '--cluster', clusterFile], badFold), 2);
    assert.match(badFold.err(), /has no fold 9 \(it has 5: --fold 0\.\.4\)/);

    const npy = join(dir, 'codes.npy');
    assert.equal(await main(['embed', '--encoder', encDir, '--dataset', 'fashion-mnist', '--limit', '300', '--out', npy], captureEnv(dir)), 0);
    const bytes = await readFile(npy);
    assert.equal(bytes.subarray(1, 6).toString(), 'NUMPY');
    assert.match(bytes.subarray(10, 128).toString(), /'shape': \(300, 10\)/);
    assert.equal(bytes.length % 64, (300 * 10 * 4) % 64);

    const clusterEnv = captureEnv(dir);
    const png = join(dir, 'confusion.png');
    assert.equal(
      await main(
        [
          'cluster',
          '--encoder',
          encDir,
          '--dataset',
          'fashion-mnist',
          '--limit',
          '500',
          '--n-init',
          '3',
          '--baseline',
          '--dec-centres',
          '--confusion',
          png,
          '--json',
          '--out',
          join(dir, 'clusters'),
        ],
        clusterEnv,
      ),
      0,
      clusterEnv.err(),
    );
    const scores = JSON.parse(clusterEnv.out()) as { images: number; results: Record<string, { accuracy: number; nmi: number; ari: number; purity: number }> };
    assert.equal(scores.images, 500);
    assert.deepEqual(Object.keys(scores.results).sort(), ['encoder+dec-centres', 'encoder+kmeans', 'pixels+dec-centres', 'pixels+kmeans']);
    for (const r of Object.values(scores.results)) {
      assert.ok(r.accuracy > 0.1 && r.accuracy <= 1 && r.nmi >= 0 && r.nmi <= 1 && r.ari <= 1 && r.purity >= r.accuracy - 1e-12, JSON.stringify(r));
    }
    assert.deepEqual([...(await readFile(png)).subarray(1, 4)], [0x50, 0x4e, 0x47]);

    // The report: pictures rendered by the coordinator, fetched with a Markdown summary.
    const repDir = join(dir, 'report');
    assert.equal(await main(['report', run.id, '--out', repDir, '--cluster', clusterFile], captureEnv(dir)), 0);
    const md = await readFile(join(repDir, 'report.md'), 'utf8');
    assert.match(md, new RegExp(`\\| ${best.fold} \\(best\\) \\| succeeded`));
    assert.match(md, /!\[loss curves\]\(loss-curves\.png\)/);
    const { PNG } = await import('pngjs');
    const grid = PNG.sync.read(await readFile(join(repDir, 'originals.png')));
    assert.equal(grid.width, 5 * (28 * 3 + 2) + 2, '5x5 grid of 28x28 images scaled 3x');
    const recon = PNG.sync.read(await readFile(join(repDir, 'reconstructions.png')));
    assert.equal(recon.width, grid.width);
    assert.ok(!recon.data.equals(grid.data), 'reconstructions differ from the originals');
    assert.equal(PNG.sync.read(await readFile(join(repDir, 'loss-curves.png'))).width, 900);

    // Bad input gets a clear status and message.
    const bad = captureEnv(dir);
    assert.equal(await main(['run', 'show', 'no-such-run', '--cluster', clusterFile], bad), 1);
    assert.match(bad.err(), /run no-such-run does not exist/);
    assert.equal(await main(['run', 'submit', '--dataset', 'cifar-10', '--model', 'seed-cifar', '--cluster', clusterFile], bad), 1);
    assert.match(bad.err(), /dataset 'cifar-10' is not imported/);
    assert.equal(await main(['run', 'submit', '--dataset', 'fashion-mnist', '--model', 'seed-mnist', '--folds', '3', '--cluster', clusterFile], bad), 1);
    assert.match(bad.err(), /imported with 5 folds, not 3/);
    assert.equal(await main(['run', 'submit', '--dataset', 'fashion-mnist', '--model', 'seed-cifar', '--cluster', clusterFile], bad), 1);
    assert.match(bad.err(), /takes 32x32x3 images/);
    // An unknown model is a usage error of the CLI (exit 2), before any connection.
    assert.equal(await main(['run', 'submit', '--dataset', 'fashion-mnist', '--model', 'vgg16', '--cluster', clusterFile], bad), 2);
    assert.match(bad.err(), /--model must be one of seed-mnist, seed-cifar, cae, got 'vgg16'/);

    // After a whole run: no generated secret in the coordinator's or any worker's log.
    assert.ok((await assertNoSecretsInLogs(cluster)) > 1000);
  } finally {
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  }
});

test('a worker SIGKILLed mid-fold: the task is redelivered and resumes from its checkpoint', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-e2e-kill-'));
  // A short ack wait so the dead worker's task comes back quickly.
  const cluster = await startLocalCluster({ dir, workers: 1, backend: 'wasm', ackWaitMs: 3000 });
  const c = runClient(cluster);
  try {
    await importFashion(cluster, 2, 400);
    const runId = await submitFashionRun(cluster, 2, 3);
    // Wait until some fold has finished its first epoch and is training the next one.
    const mid = await until(
      'a fold after epoch 1',
      () => getRun(c, runId),
      (r) => r.folds.some((f) => f.state === FoldState.FOLD_STATE_RUNNING && f.history.length >= 1 && f.lastCheckpointEpoch >= 1),
    );
    const victim = mid.folds.find((f) => f.state === FoldState.FOLD_STATE_RUNNING && f.history.length >= 1);
    assert.ok(victim);
    cluster.workers[0]?.kill('SIGKILL');
    cluster.addWorker();
    const done = await until('the run to finish', () => getRun(c, runId), isFinal, 240_000);
    assert.equal(done.state, RunState.RUN_STATE_SUCCEEDED, done.error);
    const f = done.folds[victim.fold];
    assert.ok(f);
    assert.equal(f.attempts, 2, 'the killed fold was attempted again');
    assert.ok(f.resumedFromEpoch >= 1, `the second attempt resumed after epoch ${f.resumedFromEpoch}`);
    assert.deepEqual(
      f.history.map((h) => h.epoch),
      [1, 2, 3],
    );
    // Finished epochs were not trained again: each epoch was reported exactly once overall.
    assert.equal(f.epochReports, 3);
    for (const other of done.folds.filter((x) => x.fold !== victim.fold)) assert.equal(other.state, FoldState.FOLD_STATE_SUCCEEDED);
  } finally {
    c.close();
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
