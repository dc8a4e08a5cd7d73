import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile, access } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomImageSet, writeIdxDataset } from '@cvc/data/testing';
import { main } from './index.js';
import { captureEnv } from './testing.js';

async function tinyDataset(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-cli-'));
  await writeIdxDataset(join(dir, 'data'), randomImageSet(40, 28, 28, 1, 1), randomImageSet(12, 28, 28, 1, 2));
  return dir;
}

test('usage errors exit 2 and name the problem', async () => {
  const env = captureEnv('/nonexistent');
  assert.equal(await main(['frobnicate'], env), 2);
  assert.match(env.err(), /unknown command 'frobnicate'/);
  assert.equal(await main(['cv', '--local', '--dataset', 'x'], env), 2);
  assert.match(env.err(), /needs --model/);
  assert.equal(await main(['cv', '--local', '--dataset', 'x', '--model', 'seed-mnist', '--epochs', 'ten'], env), 2);
  assert.match(env.err(), /--epochs must be an integer, got 'ten'/);
  assert.equal(await main(['cv', '--local', '--dataset', 'x', '--model', 'vgg'], env), 2);
  assert.match(env.err(), /--model must be one of seed-mnist, seed-cifar/);
  assert.equal(await main(['cv', '--local', '--bogus'], env), 2);
  assert.match(env.err(), /Unknown option '--bogus'/);
  assert.equal(await main(['help'], env), 0);
  assert.match(env.out(), /cvc cv --local/);
});

test('dataset inspect prints counts, shape and the class histogram', async () => {
  const dir = await tinyDataset();
  try {
    const env = captureEnv(dir);
    assert.equal(await main(['dataset', 'inspect', join(dir, 'data')], env), 0);
    assert.match(env.out(), /train: 40 images, 28x28x1 uint8/);
    assert.match(env.out(), /test: 12 images/);
    assert.match(env.out(), /^9\s+9\s+4$/m);
    const j = captureEnv(dir);
    assert.equal(await main(['dataset', 'inspect', join(dir, 'data'), '--json'], j), 0);
    const parsed = JSON.parse(j.out()) as { train: { classCounts: number[] } };
    assert.deepEqual(parsed.train.classCounts, [4, 4, 4, 4, 4, 4, 4, 4, 4, 4]);
    const bad = captureEnv(dir);
    assert.equal(await main(['dataset', 'inspect', join(dir, 'missing')], bad), 1);
    assert.match(bad.err(), /neither a known dataset .* nor an existing directory/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('cv --local runs every fold, writes results, prints a JSON summary, and resumes', async () => {
  const dir = await tinyDataset();
  const out = join(dir, 'run');
  try {
    const args = [
      'cv',
      '--local',
      '--dataset',
      join(dir, 'data'),
      '--model',
      'seed-mnist',
      '--folds',
      '2',
      '--epochs',
      '2',
      '--batch-size',
      '8',
      '--out',
      out,
      '--backend',
      'wasm',
    ];
    const env = captureEnv(dir);
    assert.equal(await main([...args, '--json'], env), 0, env.err());
    const summary = JSON.parse(env.out()) as {
      folds: { fold: number; metrics: { test: { count: number } } }[];
      loss: { val: { mean: number; n: number } };
      bestFold: number;
      backend: string;
    };
    assert.equal(summary.backend, 'wasm');
    assert.equal(summary.folds.length, 2);
    assert.equal(summary.loss.val.n, 2);
    assert.ok(Number.isFinite(summary.loss.val.mean));
    assert.equal(summary.folds[0]?.metrics.test.count, 12);
    assert.match(env.err(), /fold 1 epoch 2\/2 .* val_loss/);
    // Evaluation is a line per split, never a progress line counting 0/0.
    assert.match(env.err(), /^fold 0 evaluating the train split \(\d+ images\)$/m);
    assert.match(env.err(), /^fold 1 evaluating the test split \(12 images\)$/m);
    assert.doesNotMatch(env.err(), / 0\/0\b/);
    for (const k of [0, 1]) {
      const history = JSON.parse(await readFile(join(out, `fold-${k}`, 'history.json'), 'utf8')) as unknown[];
      assert.equal(history.length, 2);
      await access(join(out, `fold-${k}`, 'best.ckpt'));
    }
    const onDisk = JSON.parse(await readFile(join(out, 'summary.json'), 'utf8')) as { bestFold: number };
    assert.equal(onDisk.bestFold, summary.bestFold);

    // A re-run with the same settings finds both folds finished and prints the table.
    const again = captureEnv(dir);
    assert.equal(await main(args, again), 0, again.err());
    assert.match(again.err(), /fold 0: already finished/);
    assert.match(again.out(), /mean \+- std over 2 folds/);
    assert.match(again.out(), /best fold: \d/);

    // An interrupted fold resumes from its last checkpoint: drop fold 1's result.
    await rm(join(out, 'fold-1', 'result.json'));
    const resumed = captureEnv(dir);
    assert.equal(await main(args, resumed), 0, resumed.err());
    assert.match(resumed.err(), /fold 1: resuming after epoch 2/);

    // Other settings in the same directory are refused rather than mixed.
    const clash = captureEnv(dir);
    assert.equal(
      await main(['cv', '--local', '--dataset', join(dir, 'data'), '--model', 'seed-mnist', '--folds', '2', '--epochs', '3', '--out', out], clash),
      2,
    );
    assert.match(clash.err(), /holds a run with different settings \(config\.batchSize: 8 there, 32 now; config\.epochs: 2 there, 3 now\)/);
    // Refused before the dataset is imported: other folds must not rewrite the shards the earlier run trains on.
    const manifestBefore = await readFile(join(out, 'dataset', 'manifest.json'), 'utf8');
    const folds3 = captureEnv(dir);
    assert.equal(
      await main(
        ['cv', '--local', '--dataset', join(dir, 'data'), '--model', 'seed-mnist', '--folds', '3', '--epochs', '2', '--batch-size', '8', '--out', out],
        folds3,
      ),
      2,
    );
    assert.match(folds3.err(), /different settings \(folds: 2 there, 3 now\)/);
    assert.equal(await readFile(join(out, 'dataset', 'manifest.json'), 'utf8'), manifestBefore);
    await assert.rejects(access(join(out, 'dataset', 'fold-2.cvcs')));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a corrupted shard in the output directory is re-imported, and a corrupt checkpoint is reported', async () => {
  const dir = await tinyDataset();
  const out = join(dir, 'run');
  try {
    const args = [
      'cv',
      '--local',
      '--dataset',
      join(dir, 'data'),
      '--model',
      'seed-mnist',
      '--folds',
      '2',
      '--epochs',
      '1',
      '--batch-size',
      '8',
      '--out',
      out,
      '--backend',
      'wasm',
    ];
    assert.equal(await main(args, captureEnv(dir)), 0);
    await rm(join(out, 'fold-0', 'result.json'));
    await writeFile(join(out, 'fold-0', 'last.ckpt'), 'garbage');
    const env = captureEnv(dir);
    assert.equal(await main(args, env), 1);
    assert.match(env.err(), /fold-0\/last\.ckpt: not a cvc checkpoint/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('secrets init writes a CA, a certificate for the given names, tokens (mode 0600) and never overwrites them', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-secrets-'));
  try {
    const out = join(dir, 's');
    const env = captureEnv(dir);
    assert.equal(await main(['secrets', 'init', '--out', out, '--names', 'coord.example,10.0.0.7'], env), 0, env.err());
    assert.match(env.out(), /kubectl -n cvc create secret generic cvc-tls/);
    const { X509Certificate } = await import('node:crypto');
    const cert = new X509Certificate(await readFile(join(out, 'server.pem')));
    assert.ok(cert.checkHost('coord.example'));
    assert.ok(cert.checkIP('10.0.0.7'));
    assert.ok(cert.verify(new X509Certificate(await readFile(join(out, 'ca.pem'))).publicKey), 'signed by the CA');
    const auth = await readFile(join(out, 'auth.env'), 'utf8');
    const user = /^CVC_USER_TOKENS=(\S+)$/m.exec(auth)?.[1] ?? '';
    const worker = /^CVC_WORKER_TOKENS=(\S+)$/m.exec(auth)?.[1] ?? '';
    assert.ok(user.length >= 40 && worker.length >= 40 && user !== worker);
    assert.ok(!env.out().includes(user) && !env.out().includes(worker), 'tokens are not printed');
    const { stat } = await import('node:fs/promises');
    assert.equal((await stat(join(out, 'auth.env'))).mode & 0o077, 0);
    assert.equal((await stat(join(out, 'server-key.pem'))).mode & 0o077, 0);
    assert.equal(await main(['secrets', 'init', '--out', out], env), 2);
    assert.match(env.err(), /refusing to replace credentials/);
    assert.equal(await readFile(join(out, 'auth.env'), 'utf8'), auth);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
