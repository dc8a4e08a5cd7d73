import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from './index.js';
import { captureEnv } from './testing.js';
import { COMMAND_HELP } from './help.js';

// No cluster is needed: every one of these is refused (exit 2) before a cluster is looked up or any work starts.
const noCluster = ['--cluster', '/nonexistent/cluster.json'];
const opts = { handleSignals: false } as const;

test('a flag of another subcommand is refused, not ignored (run, sweep); an unknown subcommand is named before the cluster', async () => {
  const cases: [string[], RegExp][] = [
    [['run', 'list', '--epochs', '3', ...noCluster], /--epochs applies to run submit/],
    [['run', 'show', 'r-1', '--watch', ...noCluster], /--watch applies to run submit/],
    [['run', 'watch', 'r-1', '--model', 'cae', ...noCluster], /--model applies to run submit/],
    [['run', 'nope', ...noCluster], /unknown 'run nope'/],
    [['run', 'show', ...noCluster], /run show needs a RUN id/],
    [['sweep', 'list', '--grid', 'learning-rate=1e-3', ...noCluster], /--grid applies to sweep submit/],
    [['sweep', 'show', 's-1', '--rungs', '1,3', ...noCluster], /--rungs applies to sweep submit/],
    [['encoder', 'fetch', 'r-1', '--fold', '1', '--by', 'cluster-acc', ...noCluster], /--by chooses the best fold; --fold 1 names one/],
  ];
  for (const [argv, message] of cases) {
    const env = captureEnv('/nonexistent');
    assert.equal(await main(argv, env, opts), 2, argv.join(' '));
    assert.match(env.err(), message, argv.join(' '));
  }
});

test('local up checks --backend and --ack-wait-ms before starting anything', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-local-flags-'));
  try {
    // Aborted at once: were the flags accepted, the cluster would start and stop again (exit 130), not exit 2.
    for (const [flags, message] of [
      [['--backend', 'gpu'], /--backend must be one of auto, tensorflow, wasm, cpu, got 'gpu'/],
      [['--ack-wait-ms', '0'], /--ack-wait-ms must be >= 1, got '0'/],
    ] as const) {
      const env = captureEnv('/nonexistent');
      assert.equal(await main(['local', 'up', '--workers', '0', '--dir', dir, ...flags], env, { ...opts, signal: AbortSignal.abort() }), 2, env.err());
      assert.match(env.err(), message);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('embed and cluster refuse an output whose directory is missing before reading any image; --k needs 2; a dataset name is one path segment', async () => {
  const cases: [string[], RegExp][] = [
    [
      ['embed', '--encoder', '/nonexistent/enc', '--dataset', 'mnist', '--out', '/nonexistent/dir/codes.npy'],
      /--out \/nonexistent\/dir\/codes\.npy: the directory \/nonexistent\/dir does not exist/,
    ],
    [
      ['cluster', '--encoder', '/nonexistent/enc', '--dataset', 'mnist', '--confusion', '/nonexistent/dir/c.png'],
      /--confusion \/nonexistent\/dir\/c\.png: the directory/,
    ],
    [['cluster', '--encoder', '/nonexistent/enc', '--dataset', 'mnist', '--k', '1'], /--k must be >= 2, got '1'/],
    [['cluster', '--encoder', '/nonexistent/enc', '--dataset', 'mnist', '--k', '0'], /--k must be >= 2, got '0'/],
    [
      ['embed', '--encoder', '/nonexistent/enc', '--dataset', 'mnist', '--images', '/nonexistent/photos', '--out', 'c.npy'],
      /embed: --dataset mnist and --images \/nonexistent\/photos exclude each other/,
    ],
    // A dataset name is one segment of datasets/NAME/VERSION/ in S3: 'a/b' would land inside dataset 'a'.
    [['dataset', 'import', '/nonexistent/photos', '--name', 'photos/2024', '--out', '/nonexistent/out'], /--name must be letters, digits.*got 'photos\/2024'/],
  ];
  for (const [argv, message] of cases) {
    const env = captureEnv('/nonexistent');
    assert.equal(await main(argv, env, opts), 2, `${argv.join(' ')}: ${env.err()}`);
    assert.match(env.err(), message, argv.join(' '));
  }
});

test('help tells the truth: embed and cluster list --cluster, cv without --local promises nothing', async () => {
  for (const cmd of ['embed', 'cluster'])
    assert.ok(
      COMMAND_HELP[cmd]?.flags.some((f) => f.flag === '--cluster FILE'),
      `${cmd} --help lists --cluster`,
    );
  const env = captureEnv('/nonexistent');
  assert.equal(await main(['cv', '--dataset', 'mnist', '--model', 'seed-mnist'], env, opts), 2);
  assert.doesNotMatch(env.err(), /coming with/);
  assert.match(env.err(), /cvc run submit/);
});
