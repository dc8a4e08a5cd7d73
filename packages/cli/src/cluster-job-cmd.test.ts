import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CancelledError } from '@cvc/core';
import { ClusterJob, ClusterJobState, type ClusterJobProgress, type ClusterJobServiceClient, type ClusterJobSpec } from '@cvc/proto';
import { clusterJobCommand, clusterJobSpecFromFlags, renderClusterJob, renderClusterJobList, type ClusterJobDeps } from './cluster-job-cmd.js';
import { RemoteError, UsageError } from './errors.js';
import { parseJobAssignments } from './cluster-job-report.js';
import { importedFromDirectory, type ImportedVersion } from './imported-input.js';
import { randomImageSet, writeIdxDataset } from '@cvc/data/testing';
import { main } from './index.js';
import { captureEnv } from './testing.js';
import { tinyEncoderFiles } from './encoder-fixture.js';

const progress = (i: number, extra: Partial<ClusterJobProgress> = {}): ClusterJobProgress => ({
  iteration: i * 140,
  maxIterations: 1400,
  loss: 0.5 / i,
  clusterLoss: 0.3 / i,
  reconstructionLoss: 0.2 / i,
  changed: 0.1 / i,
  acc: 0.5 + i / 100,
  nmi: 0.4 + i / 100,
  seconds: i * 10,
  updatedAtMs: 0,
  ...extra,
});

const job = (state: ClusterJobState, over: Partial<ClusterJob> = {}): ClusterJob =>
  ClusterJob.fromPartial({
    id: 'j-1',
    spec: { runId: 'r-1', method: 'dcec', k: 10, maxIterations: 1400, dataset: 'fashion-mnist', name: 'try' },
    state,
    fold: 2,
    datasetVersion: 'v3',
    attempts: 1,
    worker: 'w-a',
    ...over,
  });

/** A fake server stream: emits `messages` (then ends, or fails) on later ticks; cancel ends it with CANCELLED as grpc-js does. */
function fakeStream<T>(messages: T[], opts: { hang?: boolean } = {}): EventEmitter & { cancel(): void } {
  const s = Object.assign(new EventEmitter(), {
    cancel: () => setImmediate(() => s.emit('error', Object.assign(new Error('Cancelled'), { code: 1, details: 'Cancelled on client' }))),
  });
  void (async () => {
    for (const m of messages) {
      await new Promise((r) => setImmediate(r));
      s.emit('data', m);
    }
    if (!opts.hang) setImmediate(() => s.emit('end'));
  })();
  return s;
}

interface Calls {
  submitted?: ClusterJobSpec;
  cancelled?: string;
  closed: boolean;
}

function fakeClient(
  jobs: ClusterJob[],
  artifacts: Record<string, { data: Buffer; sha?: string }> = {},
  opts: { hang?: boolean } = {},
): { deps: ClusterJobDeps; calls: Calls } {
  const calls: Calls = { closed: false };
  const unaryCall =
    <R>(r: R) =>
    (_req: unknown, cb: (e: null, r: R) => void) => {
      setImmediate(() => cb(null, r));
      return { cancel: () => undefined };
    };
  const last = jobs[jobs.length - 1] as ClusterJob;
  const client = {
    submitClusterJob: (req: { spec: ClusterJobSpec }, cb: (e: null, r: ClusterJob) => void) => {
      calls.submitted = req.spec;
      return unaryCall(jobs[0] as ClusterJob)(req, cb);
    },
    getClusterJob: unaryCall(last),
    cancelClusterJob: (req: { jobId: string }, cb: (e: null, r: ClusterJob) => void) => {
      calls.cancelled = req.jobId;
      return unaryCall(job(ClusterJobState.CLUSTER_JOB_STATE_CANCELLED))(req, cb);
    },
    listClusterJobs: unaryCall({ jobs }),
    watchClusterJob: () =>
      fakeStream(
        jobs.map((j) => ({ job: j, reason: '' })),
        opts,
      ),
    downloadClusterArtifact: (req: { name: string }) => {
      const a = artifacts[req.name];
      if (!a) throw new Error(`no artifact ${req.name}`);
      const half = Math.ceil(a.data.length / 2);
      return fakeStream([
        { data: a.data.subarray(0, half), size: a.data.length, sha256: '' },
        { data: a.data.subarray(half), size: 0, sha256: a.sha ?? createHash('sha256').update(a.data).digest('hex') },
      ]);
    },
    close: () => {
      calls.closed = true;
    },
  };
  return { deps: { connect: () => Promise.resolve(client as unknown as ClusterJobServiceClient) }, calls };
}

const usage = (f: () => unknown, re: RegExp): void => assert.throws(f, (e: unknown) => e instanceof UsageError && re.test(e.message));

test('submit flags become a ClusterJobSpec; bad values name the flag', () => {
  const spec = clusterJobSpecFromFlags(
    {
      method: 'idec',
      fold: '3',
      k: '12',
      gamma: '0.2',
      'update-interval': '100',
      tol: '0.01',
      'max-iterations': '5000',
      'batch-size': '128',
      'learning-rate': '0.001',
      seed: '7',
      dataset: 'fashion-mnist',
      name: 'a.b-c_d',
    },
    ['r-1'],
  );
  assert.deepEqual(spec, {
    runId: 'r-1',
    method: 'idec',
    fold: 3,
    k: 12,
    gamma: 0.2,
    updateInterval: 100,
    tol: 0.01,
    maxIterations: 5000,
    batchSize: 128,
    learningRate: 0.001,
    seed: 7,
    dataset: 'fashion-mnist',
    name: 'a.b-c_d',
    datasetVersion: '',
  });
  // Defaults are left to the worker: unset fields, and --fold best is the unset fold.
  assert.deepEqual(clusterJobSpecFromFlags({ method: 'dec', fold: 'best' }, ['r-2']), {
    runId: 'r-2',
    method: 'dec',
    dataset: '',
    name: '',
    datasetVersion: '',
  });
  usage(() => clusterJobSpecFromFlags({ method: 'dcec' }, []), /needs a RUN id/);
  usage(() => clusterJobSpecFromFlags({}, ['r']), /needs --method dcec\|idec\|dec/);
  usage(() => clusterJobSpecFromFlags({ method: 'kmeans' }, ['r']), /--method must be one of dcec, idec, dec, got 'kmeans'/);
  usage(() => clusterJobSpecFromFlags({ method: 'dcec', k: '1' }, ['r']), /--k must be >= 2/);
  usage(() => clusterJobSpecFromFlags({ method: 'dcec', tol: '2' }, ['r']), /--tol .*, got '2'/);
  usage(() => clusterJobSpecFromFlags({ method: 'dcec', fold: '-1' }, ['r']), /--fold .*, got '-1'/);
  usage(() => clusterJobSpecFromFlags({ method: 'dcec', fold: 'last' }, ['r']), /--fold must be an integer, got 'last'/);
  usage(() => clusterJobSpecFromFlags({ method: 'dcec', 'learning-rate': '0' }, ['r']), /--learning-rate .*, got '0'/);
  usage(() => clusterJobSpecFromFlags({ method: 'dec', gamma: '0.1' }, ['r']), /--gamma .*dec has none/);
  usage(() => clusterJobSpecFromFlags({ method: 'dcec', name: 'a b' }, ['r']), /--name must be/);
});

test('flags of another subcommand, a missing JOB id and an unknown subcommand are usage errors before any connection', async () => {
  const deps: ClusterJobDeps = { connect: () => Promise.reject(new Error('must not connect')) };
  const env = captureEnv(tmpdir());
  await assert.rejects(clusterJobCommand(['watch', 'j-1', '--method', 'dcec'], env, undefined, deps), /--method applies to cluster-job submit/);
  await assert.rejects(clusterJobCommand(['show'], env, undefined, deps), /cluster-job show needs a JOB id/);
  await assert.rejects(clusterJobCommand(['submit', 'r-1', '--method', 'dcec', '--out', 'x'], env, undefined, deps), /--out applies to cluster-job fetch/);
  await assert.rejects(
    clusterJobCommand(['frobnicate'], env, undefined, deps),
    /unknown 'cluster-job frobnicate' \(use submit, watch, show, list, cancel or fetch\)/,
  );
});

test('submit --watch follows the job: a bar with iteration/max, loss, changed, acc and nmi; exit 0 when it succeeds, 1 when it fails', async () => {
  const running = (i: number): ClusterJob => job(ClusterJobState.CLUSTER_JOB_STATE_RUNNING, { history: Array.from({ length: i }, (_, j) => progress(j + 1)) });
  const done = job(ClusterJobState.CLUSTER_JOB_STATE_SUCCEEDED, {
    history: [progress(1), progress(2)],
    result: {
      encoder: 'jobs/j-1/encoder',
      assignments: 'jobs/j-1/assignments.csv',
      iterations: 280,
      stopReason: 'converged',
      initialAcc: 0.48,
      acc: 0.61,
      nmi: 0.6,
      ari: 0.45,
      artifacts: {},
    },
  });
  const { deps, calls } = fakeClient([job(ClusterJobState.CLUSTER_JOB_STATE_PENDING), running(1), running(2), done]);
  const env = captureEnv(tmpdir());
  assert.equal(await clusterJobCommand(['submit', 'r-1', '--method', 'dcec', '--k', '10', '--watch'], env, undefined, deps), 0, env.err());
  assert.equal(calls.submitted?.method, 'dcec');
  assert.equal(calls.submitted?.k, 10);
  assert.ok(calls.closed);
  assert.match(env.err(), /submitted cluster job j-1 \(dcec on run r-1 fold 2\)/);
  assert.match(env.err(), /job j-1: running/);
  assert.match(env.err(), /job j-1 dcec running 140\/1400 iterations {2}loss 0\.5000 {2}changed 10\.00% {2}acc 0\.5100 {2}nmi 0\.4100/);
  assert.match(env.out(), /cluster job j-1 \(try\): succeeded/);
  assert.match(env.out(), /result: 280 iterations, stopped: converged/);

  const failed = fakeClient([running(1), job(ClusterJobState.CLUSTER_JOB_STATE_FAILED, { error: 'worker lost the dataset' })]);
  const e2 = captureEnv(tmpdir());
  assert.equal(await clusterJobCommand(['watch', 'j-1'], e2, undefined, failed.deps), 1);
  assert.match(e2.out(), /error: worker lost the dataset/);
});

test('watch stops on the abort signal (Ctrl-C) with a CancelledError and says the job goes on', async () => {
  const { deps } = fakeClient([job(ClusterJobState.CLUSTER_JOB_STATE_RUNNING, { history: [progress(1)] })], {}, { hang: true });
  const ac = new AbortController();
  const env = captureEnv(tmpdir());
  const p = clusterJobCommand(['watch', 'j-1'], env, ac.signal, deps);
  setTimeout(() => ac.abort(), 50);
  await assert.rejects(p, (e: unknown) => e instanceof CancelledError);
  assert.match(env.err(), /the job goes on on the cluster: cvc cluster-job watch j-1 follows it again, cvc cluster-job cancel j-1 stops it/);
});

test('show lists spec, the latest history, the result and the resume; list and cancel', async () => {
  const j = job(ClusterJobState.CLUSTER_JOB_STATE_SUCCEEDED, {
    attempts: 2,
    history: Array.from({ length: 25 }, (_, i) => progress(i + 1)),
    lastCheckpoint: 'jobs/j-1/ckpt-2800.bin',
    lastCheckpointIteration: 2800,
    resumedFromIteration: 1400,
    checkpointFallback: 'checkpoint jobs/j-1/ckpt-4200.bin (iteration 4200) could not be used: CHECKPOINT_CORRUPT: bad magic; resumed from iteration 2800',
    result: {
      encoder: 'jobs/j-1/encoder',
      assignments: 'jobs/j-1/assignments.csv',
      iterations: 3500,
      stopReason: 'max-iterations',
      initialAcc: 0.48,
      initialNmi: 0.5,
      acc: 0.65,
      nmi: 0.62,
      ari: 0.5,
      artifacts: { 'grid.png': 'jobs/j-1/grid.png' },
    },
  });
  const text = renderClusterJob(j);
  assert.match(text, /^cluster job j-1 \(try\): succeeded\n {2}dcec on run r-1 fold 2 \(best\), dataset fashion-mnist version v3\n/);
  assert.match(text, /k 10, gamma default, update interval default, tol default, max iterations 1400/);
  assert.match(text, /attempts 2, worker w-a/);
  assert.match(text, /resume: last checkpoint at iteration 2800 \(jobs\/j-1\/ckpt-2800\.bin\); the latest attempt resumed from iteration 1400/);
  assert.match(text, /iteration +loss +cluster +recon +changed +acc +nmi +ari +seconds/);
  assert.doesNotMatch(text, /^700\/1400 /m, 'the 5th report is left out');
  assert.match(text, /^840\/1400 +0\.0833/m);
  assert.match(text, /^3500\/1400 +0\.0200 +0\.0120 +0\.0080 +0\.40% +0\.7500 +0\.6500 +- +4m10s$/m);
  assert.match(text, /\(5 earlier reports left out; --json lists all\)/);
  assert.match(text, /k-means on the source codes: acc 0\.4800 nmi 0\.5000; fine-tuned: acc 0\.6500 nmi 0\.6200 ari 0\.5000/);
  assert.match(text, /grid\.png: jobs\/j-1\/grid\.png/);
  assert.match(text, /cvc cluster-job fetch j-1 downloads them/);
  assert.match(text, /^checkpoint fallback: checkpoint jobs\/j-1\/ckpt-4200\.bin \(iteration 4200\) could not be used: CHECKPOINT_CORRUPT/m);
  assert.doesNotMatch(text, /^error:/m, 'a succeeded job with a fallback shows no error');
  assert.match(renderClusterJobList([j]), /^j-1 +succeeded +dcec +r-1 +2 +3500\/1400 +0\.6500 +try$/m);

  const { deps, calls } = fakeClient([j]);
  const env = captureEnv(tmpdir());
  assert.equal(await clusterJobCommand(['show', 'j-1', '--json'], env, undefined, deps), 0);
  const json = JSON.parse(env.out()) as { history: unknown[]; result: { acc: number } };
  assert.equal(json.history.length, 25);
  assert.equal(json.result.acc, 0.65);
  const c = captureEnv(tmpdir());
  assert.equal(await clusterJobCommand(['cancel', 'j-9'], c, undefined, deps), 0);
  assert.equal(calls.cancelled, 'j-9');
  assert.match(c.out(), /cancelled/);
});

test('fetch downloads model.json, weights.bin and assignments.csv with their sha256 checked; a bad checksum or an unfinished job fails', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-cjob-fetch-'));
  try {
    const files = {
      'model.json': { data: Buffer.from('{"modelTopology":{}}') },
      'weights.bin': { data: Buffer.alloc(1000, 7) },
      'assignments.csv': { data: Buffer.from('record,cluster\ntest:0,3\n') },
    };
    const done = job(ClusterJobState.CLUSTER_JOB_STATE_SUCCEEDED, {
      result: { encoder: 'e', assignments: 'a', iterations: 10, stopReason: 'converged', acc: 0.7, artifacts: {} },
    });
    const env = captureEnv(tmpdir());
    const out = join(dir, 'enc');
    assert.equal(await clusterJobCommand(['fetch', 'j-1', '--out', out], env, undefined, fakeClient([done], files).deps), 0, env.err());
    assert.match(env.out(), /written to .*enc: model\.json, weights\.bin, assignments\.csv, metadata\.json/);
    assert.deepEqual(await readFile(join(out, 'weights.bin')), files['weights.bin'].data);
    const meta = JSON.parse(await readFile(join(out, 'metadata.json'), 'utf8')) as {
      clusterJob: string;
      sha256: Record<string, string>;
      scores: { acc: number };
    };
    assert.equal(meta.clusterJob, 'j-1');
    assert.equal(meta.scores.acc, 0.7);
    assert.equal(meta.sha256['model.json'], createHash('sha256').update(files['model.json'].data).digest('hex'));

    const bad = { ...files, 'weights.bin': { data: Buffer.alloc(1000, 7), sha: 'f'.repeat(64) } };
    await assert.rejects(
      clusterJobCommand(['fetch', 'j-1', '--out', join(dir, 'bad')], captureEnv(tmpdir()), undefined, fakeClient([done], bad).deps),
      (e: unknown) => e instanceof RemoteError && e.code === 'CHECKSUM' && /weights\.bin of cluster job j-1: sha256/.test(e.message),
    );
    await assert.rejects(
      clusterJobCommand(['fetch', 'j-1'], captureEnv(tmpdir()), undefined, fakeClient([job(ClusterJobState.CLUSTER_JOB_STATE_RUNNING)], files).deps),
      (e: unknown) => e instanceof RemoteError && e.code === 'NOT_FINISHED' && /j-1 is running/.test(e.message),
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('parseJobAssignments reads record/path, split, cluster and confidence or distance columns, quoted fields included', () => {
  const a = parseJobAssignments('record,split,cluster,confidence,label\n3,test,1,0.9,2\n"7",test,0,0.4,1\n', 'a.csv');
  assert.deepEqual(a.paths, ['test:3', 'test:7']);
  assert.deepEqual([...a.clusters], [1, 0]);
  assert.deepEqual([...a.confidence], [0.9, 0.4]);
  const b = parseJobAssignments('path,cluster,distance\n"shirts/a, b.png",2,1.5\n', 'b.csv');
  assert.deepEqual(b.paths, ['shirts/a, b.png']);
  assert.deepEqual([...b.confidence], [-1.5]);
  // The coordinator's header: the image is `source` (a file of an image folder, or split:index), never the ordinal `record`.
  const coord = parseJobAssignments(
    'record,split,fold,index,cluster,confidence,label,class,source\n0,train,0,828,1,0.2,8,Bag,train:828\n1,train,1,5,2,0.3,0,Top,shirts/a.png\n',
    'e.csv',
  );
  assert.deepEqual(coord.paths, ['train:828', 'shirts/a.png']);
  assert.deepEqual(parseJobAssignments('split,index,cluster,confidence\ntest,12,0,0.5\n', 'f.csv').paths, ['test:12']);
  assert.throws(() => parseJobAssignments('record,confidence\n1,0.5\n', 'c.csv'), /c\.csv: the header 'record,confidence' lacks/);
  assert.throws(() => parseJobAssignments('record,cluster,confidence\ntest:1,x,0.5\n', 'd.csv'), /d\.csv line 2: bad cluster/);
});

test('fetch --report draws the job: a picture per cluster, the map, the confusion matrix and report.md with the scores before and after', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-cjob-report-'));
  try {
    const data = join(dir, 'data');
    await writeIdxDataset(data, randomImageSet(20, 8, 8, 1, 1, 3), randomImageSet(24, 8, 8, 1, 2, 3));
    const shards = join(dir, 'shards');
    assert.equal(await main(['dataset', 'import', data, '--folds', '2', '--out', shards], captureEnv(join(dir, 'cache'))), 0);
    const enc = await tinyEncoderFiles([8, 8, 1]);
    // As the coordinator writes it (services/coordinator/src/cluster-job-export.ts ASSIGNMENTS_HEADER): `record` is the
    // row's ordinal over every shard (the 20 training rows come first), the image is `source` (split:index here).
    const rows = Array.from({ length: 24 }, (_, i) => `${20 + i},test,,${i},${i % 3},${(0.5 + (i % 5) / 10).toFixed(2)},${i % 3},c${i % 3},test:${i}`);
    const files = {
      'model.json': { data: enc.modelJson },
      'weights.bin': { data: enc.weights },
      'assignments.csv': { data: Buffer.from(['record,split,fold,index,cluster,confidence,label,class,source', ...rows].join('\n') + '\n') },
    };
    const done = job(ClusterJobState.CLUSTER_JOB_STATE_SUCCEEDED, {
      spec: { runId: 'r-1', method: 'dcec', k: 3, dataset: 'd', name: '', datasetVersion: '' },
      history: [progress(1)],
      result: {
        encoder: 'e',
        assignments: 'a',
        iterations: 140,
        stopReason: 'converged',
        initialAcc: 0.4,
        initialNmi: 0.3,
        acc: 0.6,
        nmi: 0.5,
        ari: 0.4,
        artifacts: {},
      },
    });
    const fake = fakeClient([done], files);
    const imported = await importedFromDirectory(shards);
    const deps: ClusterJobDeps = { ...fake.deps, imported: () => Promise.resolve(imported as ImportedVersion) };
    const env = captureEnv(join(dir, 'cache'));
    const rep = join(dir, 'rep');
    assert.equal(await clusterJobCommand(['fetch', 'j-1', '--out', join(dir, 'enc'), '--report', rep], env, undefined, deps), 0, env.err());
    assert.match(env.out(), /cluster report written to .*rep: report\.md, map\.png, confusion\.png, 3 cluster pictures/);
    assert.deepEqual((await readdir(rep)).sort(), ['cluster-00.png', 'cluster-01.png', 'cluster-02.png', 'confusion.png', 'map.png', 'report.md']);
    const md = await readFile(join(rep, 'report.md'), 'utf8');
    assert.match(md, /^# Clusters of 24 images \(k=3, dcec job j-1\)/);
    assert.match(md, /^\| kmeans \(source encoder\) \| 0\.4000 \|/m);
    assert.match(md, /^\| dcec \| \*\*0\.6000\*\* \|/m);
    // A record the dataset does not have is named.
    const bad = fakeClient([done], { ...files, 'assignments.csv': { data: Buffer.from('record,cluster,confidence\ntest:99,0,0.5\n') } });
    await assert.rejects(
      clusterJobCommand(['fetch', 'j-1', '--out', join(dir, 'enc2'), '--report', join(dir, 'rep2')], captureEnv(join(dir, 'cache')), undefined, {
        ...bad.deps,
        imported: () => Promise.resolve(imported as ImportedVersion),
      }),
      /record test:99 of the job's assignments\.csv is not in /,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
