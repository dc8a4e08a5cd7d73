import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Server, ServerCredentials, status, type ServerUnaryCall, type ServerWritableStream, type sendUnaryData } from '@grpc/grpc-js';
import {
  Run,
  RunServiceService,
  RunState,
  Sweep,
  SweepEvent,
  SweepServiceClient,
  SweepServiceService,
  SweepState,
  RunServiceClient,
  type GetRunRequest,
  type ListSweepsRequest,
  type ListSweepsResponse,
  type RunServiceServer,
  type SubmitSweepRequest,
  type SweepRef,
  type SweepServiceServer,
} from '@cvc/proto';
import { credentials } from '@grpc/grpc-js';
import { main } from './index.js';
import { captureEnv } from './testing.js';
import { parse } from './args.js';
import { SWEEP_FLAG_OPTIONS } from './sweep-cmd.js';
import { parseGridParam, parseRungs, sweepSpecFromFlags } from './sweep-flags.js';
import { rankTrials, renderSweep } from './sweep-render.js';
import { resolveRunOrSweep } from './sweep-best.js';
import { RemoteError } from './errors.js';

const flags = (argv: string[]): Record<string, unknown> => parse(argv, SWEEP_FLAG_OPTIONS, 'sweep submit').values;
const BASE = ['--dataset', 'fashion-mnist', '--model', 'cae', '--folds', '2', '--epochs', '4'];

test('sweep submit flags: the base spec from the run flags, a repeatable --grid split on commas, the early-stopping options', async () => {
  const spec = await sweepSpecFromFlags(
    flags([
      ...BASE,
      '--grid',
      'learning-rate=3e-3, 1e-3,1e-7',
      '--grid',
      'code-size=10,32',
      '--rungs',
      '1,2',
      '--reduction-factor',
      '2',
      '--max-parallel-runs',
      '3',
      '--random',
      '4',
      '--seed',
      '7',
      '--name',
      'lr',
    ]),
  );
  assert.deepEqual(spec.grid, [
    { name: 'learning-rate', values: ['3e-3', '1e-3', '1e-7'] },
    { name: 'code-size', values: ['10', '32'] },
  ]);
  assert.equal(spec.base?.dataset, 'fashion-mnist');
  assert.equal(spec.base?.model, 'cae');
  assert.equal(spec.base?.folds, 2);
  assert.equal(spec.base?.epochs, 4);
  assert.equal(spec.base?.learningRate, undefined, 'a swept field is left to the grid');
  assert.equal(spec.base?.seed, 7);
  assert.deepEqual([spec.random, spec.randomSeed], [4, 7], '--seed seeds the sampling too');
  assert.deepEqual(spec.rungs, [1, 2]);
  assert.deepEqual([spec.earlyStop, spec.reductionFactor, spec.maxParallelRuns, spec.name], ['asha', 2, 3, 'lr']);

  const plain = await sweepSpecFromFlags(flags([...BASE, '--grid', 'learning-rate=1e-3', '--early-stop', 'none']));
  assert.deepEqual([plain.earlyStop, plain.rungs, plain.random, plain.reductionFactor, plain.maxParallelRuns], ['none', [], undefined, undefined, undefined]);
});

test('sweep submit refuses a bad grid or early-stopping flag with a usage error naming it, before connecting (exit 2)', async () => {
  const cases: [string[], RegExp][] = [
    [['--grid', 'learning-rate'], /--grid takes NAME=V1,V2/],
    [['--grid', 'Learning_Rate=1'], /kebab case/],
    [['--grid', 'momentum=0.9'], /--grid momentum: not a sweepable parameter \(one of learning-rate, batch-size, epochs, seed, upsample, model, code-size/],
    [['--grid', 'learning-rate=1e-3,,1e-4'], /--grid learning-rate: value 2 is empty/],
    [['--grid', 'learning-rate=abc'], /--grid learning-rate: 'abc' must be a number/],
    [['--grid', 'learning-rate=2'], /--grid learning-rate: '2' /],
    [['--grid', 'batch-size=1.5'], /--grid batch-size: '1.5' must be an integer/],
    [['--grid', 'upsample=cubic'], /--grid upsample: 'cubic' must be one of nearest, bilinear/],
    [['--grid', 'seed=1,1'], /value '1' is given twice/],
    [['--grid', 'seed=1', '--grid', 'seed=2'], /--grid seed is given twice/],
    [['--grid', 'learning-rate=1e-3', '--learning-rate', '1e-4'], /--grid learning-rate and --learning-rate both set/],
    [[], /needs at least one --grid/],
    [['--grid', 'seed=1,2', '--random', '3'], /--random 3 is more than the 2 configurations/],
    [['--grid', 'seed=1,2', '--early-stop', 'hyperband'], /--early-stop must be one of asha, median, none/],
    [['--grid', 'seed=1,2', '--rungs', '2,1'], /--rungs must increase/],
    [['--grid', 'seed=1,2', '--rungs', '1,4'], /--rungs 4 is not below --epochs 4/],
    [['--grid', 'seed=1,2', '--rungs', '1', '--early-stop', 'none'], /--rungs has no effect with --early-stop none/],
    [['--grid', 'seed=1,2', '--reduction-factor', '1'], /--reduction-factor must be > 1/],
    [['--grid', 'seed=1,2', '--max-parallel-runs', '0'], /--max-parallel-runs/],
  ];
  for (const [extra, want] of cases) {
    const env = captureEnv('/nonexistent');
    assert.equal(await main(['sweep', 'submit', ...BASE, ...extra, '--cluster', '/nonexistent/cluster.json'], env), 2, extra.join(' '));
    assert.match(env.err(), want, extra.join(' '));
  }
  const model = captureEnv('/nonexistent');
  assert.equal(await main(['sweep', 'submit', '--dataset', 'd', '--model', 'seed-mnist', '--grid', 'model=seed-mnist,vgg'], model), 2);
  assert.match(model.err(), /--grid model: 'vgg' must be one of seed-mnist/);
  const noDataset = captureEnv('/nonexistent');
  assert.equal(await main(['sweep', 'submit', '--model', 'cae', '--grid', 'seed=1'], noDataset), 2);
  assert.match(noDataset.err(), /sweep submit needs --dataset NAME/);
  const noId = captureEnv('/nonexistent');
  assert.equal(await main(['sweep', 'show'], noId), 2);
  assert.match(noId.err(), /sweep show needs a SWEEP id/);
  assert.throws(() => parseGridParam('code-size=8,'), /value 2 is empty/);
  assert.deepEqual(parseRungs('1,3,9', undefined), [1, 3, 9]);
});

/** A finished ASHA sweep of 4 learning rates x 2 folds: trial 3 stopped at rung 1, trial 2 at rung 2, trial 0 best. */
function sweep(state = SweepState.SWEEP_STATE_SUCCEEDED): Sweep {
  return Sweep.fromPartial({
    id: 's-lr',
    state,
    spec: {
      name: 'lr',
      base: { dataset: 'fashion-mnist', model: 'cae', folds: 2, epochs: 4 },
      grid: [{ name: 'learning-rate', values: ['3e-3', '1e-3', '3e-4', '1e-7'] }],
      earlyStop: 'asha',
    },
    rungs: [1, 2],
    reductionFactor: 2,
    trials: [
      {
        index: 0,
        params: { 'learning-rate': '3e-3' },
        runId: 'r-0',
        state: RunState.RUN_STATE_SUCCEEDED,
        epochsReached: 4,
        valLoss: { mean: 0.021, std: 0.001 },
      },
      {
        index: 1,
        params: { 'learning-rate': '1e-3' },
        runId: 'r-1',
        state: RunState.RUN_STATE_SUCCEEDED,
        epochsReached: 4,
        valLoss: { mean: 0.034, std: 0.002 },
      },
      {
        index: 2,
        params: { 'learning-rate': '3e-4' },
        runId: 'r-2',
        state: RunState.RUN_STATE_STOPPED,
        epochsReached: 2,
        valLoss: { mean: 0.05, std: 0.003 },
        stopReason: 'asha rung 2',
      },
      {
        index: 3,
        params: { 'learning-rate': '1e-7' },
        runId: 'r-3',
        state: RunState.RUN_STATE_STOPPED,
        epochsReached: 1,
        valLoss: { mean: 0.17, std: 0.004 },
        stopReason: 'asha rung 1',
      },
    ],
    decisions: [
      { rung: 1, trial: 0, runId: 'r-0', score: 0.06, stopped: false, reason: 'in the best 1/2' },
      { rung: 1, trial: 1, runId: 'r-1', score: 0.07, stopped: false, reason: 'in the best 1/2' },
      { rung: 1, trial: 2, runId: 'r-2', score: 0.08, stopped: false, reason: 'in the best 1/2' },
      { rung: 1, trial: 3, runId: 'r-3', score: 0.17, stopped: true, reason: 'in the worst 1/2' },
      { rung: 2, trial: 2, runId: 'r-2', score: 0.05, stopped: true, reason: 'in the worst 1/2' },
    ],
    bestTrial: 0,
    bestRunId: 'r-0',
  });
}

test('sweep show ranks finished runs by mean val loss, then stopped runs by rung; marks the best; lists the decisions', () => {
  const s = sweep();
  // Out of order on purpose: the ranking does not follow the configuration order.
  s.trials.reverse();
  assert.deepEqual(
    rankTrials(s).map((t) => t.index),
    [0, 1, 2, 3],
  );
  const text = renderSweep(s);
  const rows = text.split('\n').filter((l) => /^\*? +\d+ +\d+ +/.test(l) || /^\* +1/.test(l));
  assert.equal(rows.length, 4, text);
  assert.match(rows[0] ?? '', /^\* +1 +0 +3e-3 +succeeded +4\/4 +0\.02100 \+- 0\.00100 +r-0$/);
  assert.match(rows[1] ?? '', /^ +2 +1 +1e-3 +succeeded +4\/4 +0\.03400 \+- 0\.00200 +r-1$/);
  assert.match(rows[2] ?? '', /^ +3 +2 +3e-4 +stopped +2\/4 +0\.05000 \+- 0\.00300 +rung 2: 0\.05000 +r-2$/);
  assert.match(rows[3] ?? '', /^ +4 +3 +1e-7 +stopped +1\/4 +0\.17000 \+- 0\.00400 +rung 1: 0\.17000 +r-3$/);
  assert.match(text, /^sweep s-lr \(lr\): succeeded$/m);
  assert.match(text, /4 configurations x 2 folds of cae on fashion-mnist, 4 epochs; early stopping asha \(rungs 1,2; eta 2\)/);
  assert.match(text, /^1 +3 +0\.17000 +stop +in the worst 1\/2$/m);
  assert.match(text, /^2 +2 +0\.05000 +stop/m);
  assert.match(text, /best: trial 0 \(learning-rate=3e-3\), run r-0: val loss 0\.02100 \+- 0\.00100/);
});

interface Fake {
  file: string;
  submitted: SubmitSweepRequest[];
  cancelled: string[];
  runs: RunServiceClient;
  sweeps: SweepServiceClient;
  close(): void;
}

/**
 * A coordinator with a SweepService over `sweep()` (WatchSweep: a running
 * snapshot, then `final`; with `final` undefined the stream stays open after
 * the first) and a RunService that knows runs r-*.
 */
async function fakeCoordinator(dir: string, final: SweepState | undefined): Promise<Fake & { watchCancelled: () => number }> {
  let watchCancelled = 0;
  const submitted: SubmitSweepRequest[] = [];
  const cancelled: string[] = [];
  const notFound = (what: string): { code: number; details: string } => ({ code: status.NOT_FOUND, details: `${what} does not exist` });
  const sweepImpl: SweepServiceServer = {
    submitSweep: (call: ServerUnaryCall<SubmitSweepRequest, Sweep>, cb: sendUnaryData<Sweep>) => {
      submitted.push(call.request);
      cb(null, Sweep.fromPartial({ ...sweep(SweepState.SWEEP_STATE_RUNNING), spec: call.request.spec }));
    },
    getSweep: (call: ServerUnaryCall<SweepRef, Sweep>, cb: sendUnaryData<Sweep>) =>
      call.request.sweepId === 's-lr'
        ? cb(null, sweep())
        : call.request.sweepId === 's-new'
          ? cb(null, Sweep.fromPartial({ id: 's-new', state: SweepState.SWEEP_STATE_RUNNING }))
          : cb(notFound(`sweep ${call.request.sweepId}`), null),
    listSweeps: (_call: ServerUnaryCall<ListSweepsRequest, ListSweepsResponse>, cb: sendUnaryData<ListSweepsResponse>) =>
      cb(null, { sweeps: [sweep()], nextPageToken: '', remaining: 0 }),
    cancelSweep: (call: ServerUnaryCall<SweepRef, Sweep>, cb: sendUnaryData<Sweep>) => {
      cancelled.push(call.request.sweepId);
      cb(null, sweep(SweepState.SWEEP_STATE_CANCELLED));
    },
    watchSweep: (call: ServerWritableStream<SweepRef, SweepEvent>) => {
      const running = sweep(SweepState.SWEEP_STATE_RUNNING);
      running.decisions = running.decisions.slice(0, 4);
      call.write(SweepEvent.fromPartial({ sweep: running, reason: 'rung 1' }));
      if (final === undefined) {
        call.on('cancelled', () => watchCancelled++);
        return;
      }
      call.write(SweepEvent.fromPartial({ sweep: sweep(final), reason: 'done' }));
      call.end();
    },
  };
  const runImpl: Partial<RunServiceServer> = {
    getRun: (call: ServerUnaryCall<GetRunRequest, Run>, cb: sendUnaryData<Run>) =>
      call.request.runId.startsWith('r-')
        ? cb(null, Run.fromPartial({ id: call.request.runId, state: RunState.RUN_STATE_SUCCEEDED }))
        : cb(notFound(`run ${call.request.runId}`), null),
  };
  const server = new Server();
  server.addService(SweepServiceService, sweepImpl);
  server.addService(RunServiceService, runImpl as RunServiceServer);
  const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  const file = join(dir, 'cluster.json');
  const address = `127.0.0.1:${port}`;
  await writeFile(
    file,
    JSON.stringify({
      coordinator: address,
      s3: { endPoint: '127.0.0.1', port: 1, accessKey: 'a', secretKey: 'b', bucket: 'cvc' },
      security: { insecure: true },
    }),
  );
  const runs = new RunServiceClient(address, credentials.createInsecure());
  const sweeps = new SweepServiceClient(address, credentials.createInsecure());
  return {
    file,
    submitted,
    cancelled,
    runs,
    sweeps,
    watchCancelled: () => watchCancelled,
    close: () => {
      runs.close();
      sweeps.close();
      server.forceShutdown();
    },
  };
}

test('sweep submit --watch, watch, show --json, list and cancel against a fake coordinator; watch exits 0 only when the sweep succeeded', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-sweep-'));
  const ok = await fakeCoordinator(dir, SweepState.SWEEP_STATE_SUCCEEDED);
  try {
    const cluster = ['--cluster', ok.file];
    const submit = captureEnv(dir);
    assert.equal(
      await main(['sweep', 'submit', ...BASE, '--grid', 'learning-rate=3e-3,1e-3,3e-4,1e-7', '--rungs', '1,2', '--watch', ...cluster], submit),
      0,
      submit.err(),
    );
    assert.equal(ok.submitted.length, 1);
    assert.deepEqual(ok.submitted[0]?.spec?.grid, [{ name: 'learning-rate', values: ['3e-3', '1e-3', '3e-4', '1e-7'] }]);
    assert.deepEqual(ok.submitted[0]?.spec?.rungs, [1, 2]);
    assert.match(submit.err(), /submitted sweep s-lr: 4 of 4 configurations x 2 folds, early stopping asha/);
    // The live view: each decision logged once, a line per trial with its state, epochs and score.
    assert.equal(submit.err().match(/rung 1: trial 3 stopped \(mean val loss 0\.17000\): in the worst 1\/2/g)?.length, 1, submit.err());
    assert.match(submit.err(), /rung 2: trial 2 stopped/);
    assert.match(submit.err(), /trial 3 stopped 1\/4 epochs {2}learning-rate=1e-7 {2}0\.17000 \+- 0\.00400 {2}stopped at rung 1: 0\.17000/);
    assert.match(submit.out(), /best: trial 0 \(learning-rate=3e-3\)/);

    const show = captureEnv(dir);
    assert.equal(await main(['sweep', 'show', 's-lr', '--json', ...cluster], show), 0, show.err());
    const json = JSON.parse(show.out()) as { id: string; bestTrial: number; trials: { params: Record<string, string> }[]; decisions: unknown[] };
    assert.deepEqual([json.id, json.bestTrial, json.trials[3]?.params['learning-rate'], json.decisions.length], ['s-lr', 0, '1e-7', 5]);

    const list = captureEnv(dir);
    assert.equal(await main(['sweep', 'list', ...cluster], list), 0, list.err());
    assert.match(list.out(), /^s-lr +lr +succeeded +4 +2 +2 +0 +0\.02100 \+- 0\.00100$/m);

    const cancel = captureEnv(dir);
    assert.equal(await main(['sweep', 'cancel', 's-lr', ...cluster], cancel), 0, cancel.err());
    assert.deepEqual(ok.cancelled, ['s-lr']);
    assert.match(cancel.out(), /^sweep s-lr \(lr\): cancelled$/m);

    const missing = captureEnv(dir);
    assert.equal(await main(['sweep', 'show', 's-none', ...cluster], missing), 1);
    assert.match(missing.err(), /sweep s-none does not exist/);

    // encoder fetch SWEEP: a run id is a run, a sweep id its best run, neither a clear NOT_FOUND.
    assert.deepEqual(await resolveRunOrSweep(ok.runs, ok.sweeps, 'r-1', undefined).then((r) => [r.run.id, r.sweepId]), ['r-1', undefined]);
    assert.deepEqual(await resolveRunOrSweep(ok.runs, ok.sweeps, 's-lr', undefined).then((r) => [r.run.id, r.sweepId]), ['r-0', 's-lr']);
    await assert.rejects(
      resolveRunOrSweep(ok.runs, ok.sweeps, 'x-1', undefined),
      (e: unknown) => e instanceof RemoteError && e.code === 'GRPC_NOT_FOUND' && /x-1 is neither a run nor a sweep/.test(e.message),
    );
    await assert.rejects(
      resolveRunOrSweep(ok.runs, ok.sweeps, 's-new', undefined),
      (e: unknown) => e instanceof RemoteError && e.code === 'NOT_FINISHED' && /sweep s-new has no best run yet \(it is running/.test(e.message),
    );
  } finally {
    ok.close();
  }
  const failed = await fakeCoordinator(dir, SweepState.SWEEP_STATE_FAILED);
  try {
    const watch = captureEnv(dir);
    assert.equal(await main(['sweep', 'watch', 's-lr', '--cluster', failed.file], watch), 1, watch.err());
    assert.match(watch.out(), /^sweep s-lr \(lr\): failed$/m);
  } finally {
    failed.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('Ctrl-C stops sweep watch: the stream is cancelled, the sweep goes on, exit 130', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-sweep-'));
  const open = await fakeCoordinator(dir, undefined);
  try {
    const env = captureEnv(dir);
    const ac = new AbortController();
    const code = main(['sweep', 'watch', 's-lr', '--cluster', open.file], env, { signal: ac.signal, handleSignals: false });
    const end = Date.now() + 30_000;
    while (!env.err().includes('trial 3') && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    ac.abort();
    assert.equal(await code, 130, env.err());
    assert.match(env.err(), /the sweep goes on on the cluster: cvc sweep watch s-lr follows it again, cvc sweep cancel s-lr stops it/);
    const until = Date.now() + 10_000;
    while (open.watchCancelled() === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    assert.equal(open.watchCancelled(), 1, 'the server saw the stream cancelled');
  } finally {
    open.close();
    await rm(dir, { recursive: true, force: true });
  }
});
