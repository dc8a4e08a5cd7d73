import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomImageSet, writeImageTree } from '@cvc/data/testing';
import { startS3Server, type S3Server } from '@cvc/storage';
import { main } from './index.js';
import { captureEnv } from './testing.js';

/** `cvc dataset list` over a real local S3 (s3rver): empty, then one image-folder import. */
let dir: string;
let s3: S3Server;
let clusterFile: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cvc-dslist-'));
  s3 = await startS3Server(join(dir, 's3'));
  clusterFile = join(dir, 'cluster.json');
  await writeFile(
    clusterFile,
    JSON.stringify({
      coordinator: '127.0.0.1:9',
      s3: { endPoint: s3.endPoint, port: s3.port, accessKey: s3.accessKey, secretKey: s3.secretKey, bucket: 'cvc' },
      security: { insecure: true },
    }),
  );
});
after(async () => {
  await s3.close();
  await rm(dir, { recursive: true, force: true });
});

test("dataset list: the cluster's datasets with version, shape, images and folds; a line saying there is none yet; --json", async () => {
  const empty = captureEnv(join(dir, 'cache'));
  assert.equal(await main(['dataset', 'list', '--cluster', clusterFile], empty), 0, empty.err());
  assert.equal(empty.out(), 'no datasets yet (cvc dataset import NAME, or cvc dataset import FOLDER --name NAME, adds one)\n');
  const none = captureEnv(join(dir, 'cache'));
  assert.equal(await main(['dataset', 'list', '--json', '--cluster', clusterFile], none), 0, none.err());
  assert.deepEqual(JSON.parse(none.out()), []);

  const root = join(dir, 'shapes');
  await writeImageTree(root, randomImageSet(20, 8, 8, 1, 3, 2), 20, { height: 8, width: 8, channels: 1, format: 'png', classNames: ['a', 'b'] });
  const imp = captureEnv(join(dir, 'cache'));
  assert.equal(await main(['dataset', 'import', root, '--name', 'shapes', '--folds', '2', '--cluster', clusterFile], imp), 0, imp.err());

  const env = captureEnv(join(dir, 'cache'));
  assert.equal(await main(['dataset', 'list', '--cluster', clusterFile], env), 0, env.err());
  assert.match(env.out(), /^dataset\s+version\s+shape\s+images\s+test\s+folds\n[- ]+\nshapes\s+[0-9a-f]{16}\s+8x8x1\s+20\s+2\s+2 \(stratified, seed 42\)\n$/);
  const json = captureEnv(join(dir, 'cache'));
  assert.equal(await main(['dataset', 'list', '--json', '--cluster', clusterFile], json), 0, json.err());
  const rows = JSON.parse(json.out()) as { dataset: string; shape: number[]; images: number; testImages: number; folds: number }[];
  assert.deepEqual(
    rows.map((r) => [r.dataset, r.shape, r.images, r.testImages, r.folds]),
    [['shapes', [8, 8, 1], 20, 2, 2]],
  );
});
