// SweepService over TLS gRPC on the local cluster (nats-server, s3rver, the
// coordinator and 2 workers): a 4-configuration ASHA sweep (2 folds, 3
// epochs, rung 1) in which the 3 runs below the best at rung 1 are stopped,
// plus List, Watch and Cancel. (The `cvc sweep` CLI has its own e2e test.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status, type ServiceError } from '@grpc/grpc-js';
import { FoldState, RunState, SweepServiceClient, SweepState, type Sweep, type SweepEvent, type SweepSpec } from '@cvc/proto';
import { startLocalCluster } from '@cvc/cli/testing';
import { channel, getRun, importFashion, runClient, until } from './helpers.js';

const unary =
  <Req, Res>(fn: (req: Req, cb: (e: ServiceError | null, r: Res) => void) => unknown) =>
  (req: Req): Promise<Res> =>
    new Promise((resolve, reject) => fn(req, (e, r) => (e ? reject(e) : resolve(r))));

test('SweepService end to end: ASHA over 4 configurations keeps the best at rung 1 and stops the rest; list, watch and cancel', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-e2e-sweep-'));
  const cluster = await startLocalCluster({ dir, workers: 2, backend: 'wasm', ackWaitMs: 20_000 });
  const ch = channel(cluster, cluster.credentials.userToken);
  const sweeps = new SweepServiceClient(cluster.endpoints.coordinator, ch.creds, ch.options);
  const runs = runClient(cluster);
  const submit = unary<{ spec: SweepSpec }, Sweep>((r, cb) => sweeps.submitSweep(r, cb));
  const get = unary<{ sweepId: string }, Sweep>((r, cb) => sweeps.getSweep(r, cb));
  const cancel = unary<{ sweepId: string }, Sweep>((r, cb) => sweeps.cancelSweep(r, cb));
  const list = unary<{ pageSize: number; pageToken: string }, { sweeps: Sweep[] }>((r, cb) => sweeps.listSweeps(r, cb));
  try {
    await importFashion(cluster, 2, 200);
    const base = { name: '', dataset: 'fashion-mnist', model: 'seed-mnist', folds: 2, epochs: 3, upsample: '', datasetVersion: '', modelConfigJson: '' };
    const spec = (over: Partial<SweepSpec>): SweepSpec => ({ name: 'lr', base, grid: [], earlyStop: 'asha', rungs: [1], ...over });

    await assert.rejects(
      submit({ spec: spec({ grid: [{ name: 'momentum', values: ['0.9'] }] }) }),
      (e: ServiceError) => e.code === status.INVALID_ARGUMENT && /unknown parameter 'momentum'/.test(e.details),
    );
    const s0 = await submit({ spec: spec({ grid: [{ name: 'learning-rate', values: ['1e-7', '3e-3', '1e-3', '2e-3'] }] }) });
    assert.equal(s0.state, SweepState.SWEEP_STATE_RUNNING);
    const events: SweepEvent[] = [];
    const watched = new Promise<void>((resolve, reject) => {
      const stream = sweeps.watchSweep({ sweepId: s0.id });
      stream.on('data', (e: SweepEvent) => events.push(e));
      stream.on('end', () => resolve());
      stream.on('error', reject);
    });
    const done = await until(
      'the sweep to end',
      () => get({ sweepId: s0.id }),
      (s) => s.state !== SweepState.SWEEP_STATE_RUNNING,
      400_000,
    );
    await watched;
    assert.equal(done.state, SweepState.SWEEP_STATE_SUCCEEDED, done.error);
    assert.equal(events.at(-1)?.sweep?.state, SweepState.SWEEP_STATE_SUCCEEDED, 'the watch ends with the final sweep');
    // Rung 1 (epoch 1 of 3) with eta 3 over 4 runs keeps the best one: it finishes, the other three stop at rung 1.
    // (Which learning rate is worst after one epoch of 160 images is the data's business: the test checks the rule.)
    const rung1 = new Map(done.decisions.filter((d) => d.rung === 1).map((d) => [d.trial, d.score]));
    assert.equal(rung1.size, 4, JSON.stringify(done.decisions));
    const bestAtRung1 = [...rung1].sort((a, b) => a[1] - b[1])[0]?.[0];
    assert.equal(done.bestTrial, bestAtRung1);
    for (const t of done.trials) {
      if (t.index === bestAtRung1) {
        assert.equal(t.state, RunState.RUN_STATE_SUCCEEDED);
        assert.equal(t.epochsReached, 3);
        continue;
      }
      assert.equal(t.state, RunState.RUN_STATE_STOPPED, `trial ${t.index}: ${JSON.stringify(done.decisions)}`);
      assert.match(t.stopReason, /^asha rung 1: mean val loss \d\.\d+ is in the worst \d of \d runs at this rung/);
      assert.ok(t.epochsReached >= 1 && t.epochsReached < 3, `trial ${t.index} stopped early (${t.epochsReached} epochs)`);
      assert.ok(done.decisions.some((d) => d.trial === t.index && d.rung === 1 && d.stopped));
      const run = await getRun(runs, t.runId);
      assert.equal(run.sweepId, s0.id);
      assert.equal(run.state, RunState.RUN_STATE_STOPPED);
      assert.ok(
        run.folds.every((f) => f.state === FoldState.FOLD_STATE_STOPPED && f.lastCheckpointEpoch >= 1),
        `run ${run.id}: folds STOPPED with their checkpoints kept`,
      );
    }
    process.stdout.write(
      `sweep ${s0.id}: ${done.trials.map((t) => `${t.params['learning-rate']} ${RunState[t.state]} ${t.valLoss?.mean.toFixed(4) ?? '-'} ${t.stopReason}`).join(' | ')}\n`,
    );

    // A second sweep, cancelled at once: its runs are cancelled, and it is listed beside the first.
    const s1 = await submit({ spec: spec({ name: 'cancelled', grid: [{ name: 'seed', values: ['1', '2'] }], maxParallelRuns: 1 }) });
    const cancelled = await cancel({ sweepId: s1.id });
    assert.equal(cancelled.state, SweepState.SWEEP_STATE_CANCELLED);
    assert.deepEqual(
      cancelled.trials.map((t) => t.state),
      [RunState.RUN_STATE_CANCELLED, RunState.RUN_STATE_CANCELLED],
    );
    const all = await list({ pageSize: 0, pageToken: '' });
    assert.deepEqual(all.sweeps.map((s) => s.id).sort(), [s0.id, s1.id].sort());
  } finally {
    sweeps.close();
    runs.close();
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  }
});

test('a coordinator SIGKILLed mid-sweep: the restarted one keeps the recorded decisions and ends the sweep the same way', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-e2e-sweep-kill-'));
  const cluster = await startLocalCluster({ dir, workers: 2, backend: 'wasm', ackWaitMs: 20_000 });
  const ch = channel(cluster, cluster.credentials.userToken);
  let sweeps = new SweepServiceClient(cluster.endpoints.coordinator, ch.creds, ch.options);
  const get = (sweepId: string): Promise<Sweep> => new Promise((resolve, reject) => sweeps.getSweep({ sweepId }, (e, r) => (e ? reject(e) : resolve(r))));
  try {
    await importFashion(cluster, 2, 200);
    const base = { name: '', dataset: 'fashion-mnist', model: 'seed-mnist', folds: 2, epochs: 3, upsample: '', datasetVersion: '', modelConfigJson: '' };
    const spec: SweepSpec = { name: 'kill', base, grid: [{ name: 'learning-rate', values: ['1e-7', '3e-3', '1e-3', '2e-3'] }], earlyStop: 'asha', rungs: [1] };
    const s0 = await new Promise<Sweep>((resolve, reject) => sweeps.submitSweep({ spec }, (e, r) => (e ? reject(e) : resolve(r))));
    const before = await until(
      'two runs judged at rung 1',
      () => get(s0.id),
      (s) => s.decisions.length >= 2,
      300_000,
    );
    await cluster.restartCoordinator();
    sweeps.close();
    sweeps = new SweepServiceClient(cluster.endpoints.coordinator, ch.creds, ch.options);
    const done = await until(
      'the sweep to end',
      () => get(s0.id).catch(() => before),
      (s) => s.state !== SweepState.SWEEP_STATE_RUNNING,
      400_000,
    );
    assert.equal(done.state, SweepState.SWEEP_STATE_SUCCEEDED, done.error);
    const key = (d: { trial: number; rung: number; stopped: boolean; score: number }): string => `${d.trial}@${d.rung}:${d.stopped}:${d.score}`;
    assert.deepEqual(done.decisions.slice(0, before.decisions.length).map(key), before.decisions.map(key), 'decisions recorded before the kill are kept');
    const rung1 = new Map(done.decisions.filter((d) => d.rung === 1).map((d) => [d.trial, d.score]));
    assert.equal(rung1.size, 4);
    const bestAtRung1 = [...rung1].sort((a, b) => a[1] - b[1])[0]?.[0];
    assert.equal(done.bestTrial, bestAtRung1);
    assert.deepEqual(
      done.trials.map((t) => (t.index === bestAtRung1 ? t.state === RunState.RUN_STATE_SUCCEEDED : t.state === RunState.RUN_STATE_STOPPED)),
      [true, true, true, true],
      JSON.stringify(done.trials.map((t) => [t.index, RunState[t.state], t.stopReason])),
    );
  } finally {
    sweeps.close();
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
