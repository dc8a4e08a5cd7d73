import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomImageSet, writeIdxDataset } from '@cvc/data/testing';
import { main } from './index.js';
import { captureEnv } from './testing.js';

/**
 * Every command is given main()'s abort signal: aborted (as Ctrl-C does),
 * each stops with exit code 130 and says what was cancelled, before doing
 * its work. (The Ctrl-C of a running command in a child process is in
 * sigint.test.ts.)
 */
test('every command stops on the abort signal with exit 130', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-abort-'));
  try {
    const data = join(dir, 'data');
    await writeIdxDataset(data, randomImageSet(40, 28, 28, 1, 1), randomImageSet(12, 28, 28, 1, 2));
    const clusterFile = join(dir, 'cluster.json');
    // Nothing listens there: a call that was made would fail with exit 1, not 130.
    await writeFile(
      clusterFile,
      JSON.stringify({
        coordinator: '127.0.0.1:9',
        s3: { endPoint: '127.0.0.1', port: 9, accessKey: 'a', secretKey: 'b', bucket: 'cvc' },
        security: { insecure: true },
      }),
    );
    const c = ['--cluster', clusterFile];
    const commands: [string[], RegExp][] = [
      [['dataset', 'import', data, '--folds', '2', '--out', join(dir, 'shards')], /importing data was cancelled/],
      [['dataset', 'download', 'mnist'], /downloading mnist was cancelled/],
      [['run', 'watch', 'r-1', ...c], /watching run r-1 was cancelled/],
      [['run', 'submit', '--dataset', 'mnist', '--model', 'seed-mnist', '--watch', ...c], /run submit was cancelled/],
      [['run', 'show', 'r-1', ...c], /run show r-1 was cancelled/],
      [['encoder', 'fetch', 'r-1', ...c], /encoder fetch r-1 was cancelled/],
      [['report', 'r-1', ...c], /report r-1 was cancelled/],
      [['embed', '--encoder', join(dir, 'enc'), '--dataset', data, '--out', join(dir, 'codes.npy')], /embed was cancelled/],
      [['cluster', '--encoder', join(dir, 'enc'), '--dataset', data], /cluster was cancelled/],
      [
        ['cv', '--local', '--dataset', data, '--model', 'seed-mnist', '--folds', '2', '--epochs', '1', '--backend', 'cpu', '--out', join(dir, 'cv')],
        /was cancelled; finished epochs are checkpointed/,
      ],
    ];
    for (const [argv, message] of commands) {
      const env = captureEnv(join(dir, 'cache'));
      const code = await main(argv, env, { signal: AbortSignal.abort(), handleSignals: false });
      assert.equal(code, 130, `${argv.join(' ')}: ${env.err()}`);
      assert.match(env.err(), message, argv.join(' '));
    }
    // The stopped import wrote no manifest.
    assert.equal((await readdir(join(dir, 'shards')).catch((): string[] => [])).includes('manifest.json'), false);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
