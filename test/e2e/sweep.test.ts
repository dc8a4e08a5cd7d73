import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FoldState, RunState, SweepState, type RungDecision, type Sweep } from '@cvc/proto';
import { main } from '@cvc/cli';
import { captureEnv, startLocalCluster } from '@cvc/cli/testing';
import { getRun, getSweep, importFashion, runClient, sweepClient, until } from './helpers.js';

/** A tiny autoencoder: two blocks of 4 and 8 filters, an 8-unit code, a sigmoid output; trains a 100-image fold epoch in about a second. */
const TINY_CAE = { encoder: [{ filters: 4, pool: 2 }, { filters: 8 }], codeSize: 8, outputActivation: 'sigmoid' };

// Measured with `cvc cv --local` on the same 200 images (2 folds, batch 8, 4 epochs), mean val loss per epoch:
//   3e-3: 0.097 0.076 0.071 0.058   1e-3: 0.142 0.097 0.082 0.065   3e-4: 0.165 0.152 0.134 0.115   1e-7: 0.178 0.178 0.178 0.178
// so 3e-3 is the best at every rung and at the end, and 1e-7 (which does not learn) the worst.
const RATES = ['3e-3', '1e-3', '3e-4', '1e-7'];
const BEST = 0;
const FROZEN = 3;

const key = (d: RungDecision): string => `${d.rung}/${d.trial}`;

test('a sweep of 4 learning rates x 2 folds x 4 epochs with fold-aware ASHA on 2 workers: 1e-7 stopped at the first rung, 3e-3 best; a coordinator SIGKILL mid-sweep changes no decision', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-e2e-sweep-'));
  const cluster = await startLocalCluster({ dir, workers: 2, backend: 'wasm', ackWaitMs: 10_000 });
  let sweeps = sweepClient(cluster);
  let runs = runClient(cluster);
  const transcript: string[] = [];
  const cli = async (args: string[]): Promise<{ code: number; out: string; err: string }> => {
    const env = captureEnv(dir);
    const code = await main([...args, '--cluster', join(dir, 'cluster.json')], env);
    transcript.push(`$ cvc ${args.join(' ')}`, env.err().trimEnd(), env.out().trimEnd(), `(exit ${code})`, '');
    return { code, out: env.out(), err: env.err() };
  };
  try {
    await importFashion(cluster, 2, 200);
    const config = join(dir, 'tiny-cae.json');
    await writeFile(config, JSON.stringify(TINY_CAE));
    const submit = await cli([
      'sweep',
      'submit',
      '--name',
      'lr',
      '--dataset',
      'fashion-mnist',
      '--model-config',
      config,
      '--folds',
      '2',
      '--epochs',
      '4',
      '--batch-size',
      '8',
      '--grid',
      `learning-rate=${RATES.join(',')}`,
      '--rungs',
      '1,2',
      '--reduction-factor',
      '2',
    ]);
    assert.equal(submit.code, 0, submit.err);
    const id = submit.out.trim();
    assert.match(submit.err, new RegExp(`submitted sweep ${id}: 4 of 4 configurations x 2 folds, early stopping asha`));

    // Mid-sweep: once the first rung has been judged for some run and the sweep is still going, SIGKILL the coordinator.
    const before = await until(
      'a rung decision',
      () => getSweep(sweeps, id),
      (s) => s.decisions.length > 0 || s.state !== SweepState.SWEEP_STATE_RUNNING,
      180_000,
    );
    assert.equal(before.state, SweepState.SWEEP_STATE_RUNNING, `the sweep was still running at the kill (${before.error})`);
    transcript.push(`(coordinator SIGKILLed here with ${before.decisions.length} decision(s) recorded, and restarted)`, '');
    sweeps.close();
    runs.close();
    await cluster.restartCoordinator();
    sweeps = sweepClient(cluster);
    runs = runClient(cluster);

    const watch = await cli(['sweep', 'watch', id]);
    assert.equal(watch.code, 0, watch.err);
    const show = await cli(['sweep', 'show', id]);
    assert.equal(show.code, 0, show.err);
    const done: Sweep = await getSweep(sweeps, id);
    assert.equal(done.state, SweepState.SWEEP_STATE_SUCCEEDED, done.error);

    // The decisions recorded before the kill are kept as they were; none is made twice.
    assert.deepEqual(
      done.decisions.slice(0, before.decisions.length).map((d) => ({ ...d })),
      before.decisions.map((d) => ({ ...d })),
      'the restarted coordinator keeps the recorded decisions',
    );
    const stops = done.decisions.filter((d) => d.stopped);
    assert.equal(new Set(stops.map((d) => d.trial)).size, stops.length, 'a run is stopped once');
    assert.equal(
      new Set(done.decisions.filter((d) => !d.stopped).map(key)).size,
      done.decisions.filter((d) => !d.stopped).length,
      'a run goes on once per rung',
    );

    // Every score is the mean validation loss over the run's folds at the rung's epoch, from the recorded reports.
    for (const d of done.decisions) {
      const run = await getRun(runs, d.runId);
      const at = run.folds.flatMap((f) => f.history.filter((h) => h.epoch === d.rung).map((h) => h.valLoss));
      assert.equal(at.length, run.folds.length, `run ${d.runId}: every fold reported epoch ${d.rung} once`);
      const mean = at.reduce((a, b) => a + b, 0) / at.length;
      assert.ok(Math.abs(mean - d.score) < 1e-9, `decision ${key(d)}: score ${d.score} is the folds' mean ${mean}`);
    }

    // 1e-7 is stopped at the first rung: its folds trained one epoch each and were stopped there, checkpoints kept.
    const frozen = done.trials[FROZEN];
    assert.ok(frozen);
    assert.equal(frozen.params['learning-rate'], '1e-7');
    assert.equal(frozen.state, RunState.RUN_STATE_STOPPED, frozen.stopReason);
    assert.equal(frozen.epochsReached, 1);
    assert.deepEqual(
      done.decisions.filter((d) => d.trial === FROZEN).map((d) => [d.rung, d.stopped]),
      [[1, true]],
      'judged once, at rung 1, and stopped',
    );
    assert.match(frozen.stopReason, /rung 1/);
    const frozenRun = await getRun(runs, frozen.runId);
    assert.equal(frozenRun.state, RunState.RUN_STATE_STOPPED);
    assert.equal(frozenRun.sweepId, id);
    for (const f of frozenRun.folds) {
      assert.equal(f.state, FoldState.FOLD_STATE_STOPPED, `fold ${f.fold} of the stopped run`);
      assert.deepEqual(
        f.history.map((h) => h.epoch),
        [1],
        `fold ${f.fold} of the stopped run trained its first epoch only`,
      );
      assert.ok(f.lastCheckpoint, `fold ${f.fold} keeps its checkpoint`);
    }

    // The best configuration is 3e-3: it finished every epoch of every fold and has the lowest mean val loss.
    assert.equal(done.bestTrial, BEST);
    const best = done.trials[BEST];
    assert.ok(best?.valLoss);
    assert.equal(best.state, RunState.RUN_STATE_SUCCEEDED);
    assert.equal(best.epochsReached, 4);
    assert.equal(done.bestRunId, best.runId);
    for (const t of done.trials) if (t.index !== BEST && t.valLoss && t.state === RunState.RUN_STATE_SUCCEEDED) assert.ok(best.valLoss.mean <= t.valLoss.mean);
    const bestRun = await getRun(runs, best.runId);
    for (const f of bestRun.folds)
      assert.deepEqual(
        f.history.map((h) => h.epoch),
        [1, 2, 3, 4],
      );
    const foldEpochs = (await Promise.all(done.trials.map((t) => getRun(runs, t.runId)))).reduce(
      (n, r) => n + r.folds.reduce((m, f) => m + f.history.length, 0),
      0,
    );
    assert.ok(foldEpochs < 4 * 2 * 4, `early stopping saved fold-epochs: ${foldEpochs} of ${4 * 2 * 4}`);

    // What the user saw: the live view logged the decisions; the table ranks 3e-3 first, marked best, and says why 1e-7 stopped.
    assert.match(watch.err, /rung 1: trial 3 stopped/);
    const rows = show.out.split('\n');
    assert.match(rows.find((l) => l.startsWith('*')) ?? '', /^\* +1 +0 +3e-3 +succeeded +4\/4 /);
    assert.match(rows.find((l) => / 1e-7 /.test(l)) ?? '', /stopped +1\/4 +.*rung 1: /);
    assert.match(show.out, new RegExp(`best: trial 0 \\(learning-rate=3e-3\\), run ${best.runId}`));

    // encoder fetch SWEEP: the best run's best fold.
    const encDir = join(dir, 'enc');
    const fetched = await cli(['encoder', 'fetch', id, '--out', encDir]);
    assert.equal(fetched.code, 0, fetched.err);
    const meta = JSON.parse(await readFile(join(encDir, 'metadata.json'), 'utf8')) as { run: string; sweep: string; fold: number; losses: { val: number } };
    const bestFold = bestRun.folds.reduce((b, f) => ((f.val?.loss ?? Infinity) < (b.val?.loss ?? Infinity) ? f : b));
    assert.deepEqual([meta.run, meta.sweep, meta.fold], [best.runId, id, bestFold.fold]);
    assert.equal(meta.losses.val, bestFold.val?.loss);
  } finally {
    sweeps.close();
    runs.close();
    await cluster.stop();
    const file = process.env['CVC_SWEEP_TRANSCRIPT'];
    if (file) await writeFile(file, transcript.join('\n'));
    await rm(dir, { recursive: true, force: true });
  }
});
