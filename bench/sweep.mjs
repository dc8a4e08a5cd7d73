#!/usr/bin/env node
// npm run bench:sweep [-- --workers 2 --epochs 6 --limit 300 --rungs 1,3]
//
// Fold-aware ASHA against no early stopping, on the local cluster (what
// `cvc local up` starts: nats-server, the S3 server, the coordinator and 2
// workers on loopback, TLS and tokens). The same sweep, 8 configurations
// (learning-rate 3e-3,1e-3,3e-4,1e-4 x batch-size 8,32) of a tiny
// convolutional autoencoder x 3 folds on a Fashion-MNIST subset, is run
// through the CLI twice: with `--early-stop asha` (eta 3) and with
// `--early-stop none`. For each: the fold-epochs trained (epochs reported by
// every fold of every run), the wall time from submit to the end, and the
// best configuration. A benchmark, not a test: the numbers are printed, the
// checks are the RESULT line `same_best` and the ratio.
//
// Last lines, machine-readable:
//   RESULT mode=asha fold_epochs=… wall_s=… best=… best_val=…
//   RESULT mode=none fold_epochs=… wall_s=… best=… best_val=…
//   RESULT name=sweep same_best=true|false fold_epoch_ratio=… wall_ratio=…
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { SweepState } from '../packages/proto/dist/index.js';
import { main, resolveCluster, runServiceClient } from '../packages/cli/dist/index.js';
import { captureEnv, startLocalCluster } from '../packages/cli/dist/testing.js';

const { values } = parseArgs({
  options: {
    workers: { type: 'string', default: '2' },
    epochs: { type: 'string', default: '6' },
    limit: { type: 'string', default: '300' },
    rungs: { type: 'string', default: '1,3' },
  },
});
const WORKERS = Number(values.workers);
const EPOCHS = Number(values.epochs);
const FOLDS = 3;
const GRID = ['--grid', 'learning-rate=3e-3,1e-3,3e-4,1e-4', '--grid', 'batch-size=8,32'];
const TINY_CAE = { encoder: [{ filters: 4, pool: 2 }, { filters: 8 }], codeSize: 8, outputActivation: 'sigmoid' };
const call = (f) => new Promise((res, rej) => f((e, r) => (e ? rej(e) : res(r))));

const dir = await mkdtemp(join(tmpdir(), 'cvc-bench-sweep-'));
const cluster = await startLocalCluster({ dir, workers: WORKERS, backend: 'wasm', logLevel: 'warn' });
const clusterFile = join(dir, 'cluster.json');
const runs = await runServiceClient(await resolveCluster(clusterFile));
const cvc = async (args) => {
  const env = captureEnv(dir);
  const code = await main([...args, '--cluster', clusterFile], env);
  if (code !== 0) throw new Error(`cvc ${args.join(' ')} exited ${code}: ${env.err()}`);
  return env.out();
};
let failed = false;
try {
  await cvc(['dataset', 'import', 'fashion-mnist', '--folds', String(FOLDS), '--limit', values.limit]);
  const config = join(dir, 'tiny-cae.json');
  await writeFile(config, JSON.stringify(TINY_CAE));
  const results = {};
  for (const mode of ['asha', 'none']) {
    const t0 = Date.now();
    const stop = mode === 'asha' ? ['--early-stop', 'asha', '--rungs', values.rungs, '--reduction-factor', '3'] : ['--early-stop', 'none'];
    const args = ['sweep', 'submit', '--name', `bench-${mode}`, '--dataset', 'fashion-mnist', '--model-config', config, '--folds', String(FOLDS)];
    const json = JSON.parse(await cvc([...args, '--epochs', String(EPOCHS), ...GRID, ...stop, '--watch', '--json']));
    const wall = (Date.now() - t0) / 1000;
    if (json.state !== 'SWEEP_STATE_SUCCEEDED' && json.state !== SweepState.SWEEP_STATE_SUCCEEDED)
      throw new Error(`sweep ${json.id} ended ${json.state}: ${json.error}`);
    let foldEpochs = 0;
    for (const t of json.trials) {
      const run = await call((cb) => runs.getRun({ runId: t.runId }, cb));
      foldEpochs += run.folds.reduce((n, f) => n + f.history.length, 0);
    }
    const best = json.trials.find((t) => t.index === json.bestTrial);
    const label = Object.entries(best?.params ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    results[mode] = { foldEpochs, wall, best: label, val: best?.valLoss?.mean };
    const stopped = json.trials.filter((t) => t.state === 'RUN_STATE_STOPPED').length;
    console.log(
      `${mode}: ${json.trials.length} runs, ${stopped} stopped early, ${json.decisions.length} decisions; ${foldEpochs} fold-epochs in ${wall.toFixed(1)} s; best ${label}`,
    );
    console.log(`RESULT mode=${mode} fold_epochs=${foldEpochs} wall_s=${wall.toFixed(1)} best=${label} best_val=${best?.valLoss?.mean?.toFixed(5)}`);
  }
  const sameBest = results.asha.best === results.none.best;
  failed = !sameBest;
  console.log(
    `RESULT name=sweep same_best=${sameBest} fold_epoch_ratio=${(results.asha.foldEpochs / results.none.foldEpochs).toFixed(3)} wall_ratio=${(results.asha.wall / results.none.wall).toFixed(3)}`,
  );
} catch (err) {
  failed = true;
  console.error(err);
} finally {
  runs.close();
  await cluster.stop();
  await rm(dir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
