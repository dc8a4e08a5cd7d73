import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { access, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(fileURLToPath(import.meta.url), '../../../..');
const cvc = join(root, 'packages/cli/bin/cvc.js');
const FASHION = '/usr/share/datasets/fashion-mnist';

function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((res, rej) => {
    const p = spawn(process.execPath, [cvc, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    p.on('error', rej);
    p.on('close', (code) => res({ code, stdout, stderr }));
  });
}

test('the real Fashion-MNIST (Debian dataset-fashion-mnist) is found by name and inspected', async () => {
  await access(join(FASHION, 'train-images-idx3-ubyte.gz')).catch(() =>
    assert.fail(`${FASHION} is missing: install Debian's dataset-fashion-mnist (the README's test command does)`),
  );
  const r = await run(['dataset', 'inspect', 'fashion-mnist', '--json'], { CVC_CACHE_DIR: join(tmpdir(), 'cvc-empty-cache') });
  assert.equal(r.code, 0, r.stderr);
  const info = JSON.parse(r.stdout) as { dir: string; train: { count: number; classCounts: number[] }; test: { count: number } };
  assert.equal(info.dir, FASHION);
  assert.equal(info.train.count, 60_000);
  assert.equal(info.test.count, 10_000);
  assert.deepEqual(info.train.classCounts, new Array(10).fill(6000));
});

test('cvc cv --local trains seed-mnist on real Fashion-MNIST folds end to end', async () => {
  const out = await mkdtemp(join(tmpdir(), 'cvc-e2e-'));
  try {
    const r = await run([
      'cv',
      '--local',
      '--dataset',
      'fashion-mnist',
      '--model',
      'seed-mnist',
      '--folds',
      '3',
      '--epochs',
      '2',
      '--limit',
      '300',
      '--out',
      out,
      '--json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout) as {
      folds: { fold: number; bestEpoch: number; metrics: Record<string, { loss: number; count: number }> }[];
      loss: Record<string, { mean: number; std: number; n: number }>;
      bestFold: number;
    };
    assert.equal(s.folds.length, 3);
    for (const f of s.folds) {
      assert.equal(f.metrics['val']?.count, 100);
      assert.equal(f.metrics['test']?.count, 300);
      for (const split of ['train', 'val', 'test']) {
        const l = f.metrics[split]?.loss as number;
        assert.ok(l > 0 && l < 0.5, `${split} loss ${l} is a plausible pixel MSE`);
      }
      const history = JSON.parse(await readFile(join(out, `fold-${f.fold}`, 'history.json'), 'utf8')) as { loss: number }[];
      assert.equal(history.length, 2);
      assert.ok((history[1]?.loss as number) < (history[0]?.loss as number), `fold ${f.fold}: training loss falls`);
    }
    assert.equal(s.loss['test']?.n, 3);
    const manifest = JSON.parse(await readFile(join(out, 'dataset', 'manifest.json'), 'utf8')) as { dataset: string; shards: { count: number }[] };
    assert.equal(manifest.dataset, 'fashion-mnist');
    assert.deepEqual(
      manifest.shards.map((x) => x.count),
      [100, 100, 100, 300],
    );
    assert.match(r.stderr, /backend: /);
    assert.match(r.stderr, /fold 2 epoch 2\/2/);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});
