// How many documents the periodic recoveries and the list pages read: ended
// runs, sweeps and jobs are not read again every minute, a page reads its own
// documents, start-up reads each run and job once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DocStore } from '@cvc/messaging';
import { ClusterJob, ClusterJobState, FoldState, Run, RunState, Sweep, SweepState } from '@cvc/proto';
import { createMemoryDocStore, createMemoryObjectStore, createMemoryTaskQueue } from '@cvc/testkit';
import { jobKey, type ClusterJobDoc } from './cluster-job-doc.js';
import { ClusterJobs } from './cluster-jobs.js';
import { Coordinator } from './coordinator.js';
import { runKey, type RunDoc } from './run-doc.js';
import { recoverAtStart } from './start-up.js';
import { sweepKey, sweepSettled, type SweepDoc } from './sweep-doc.js';
import { SweepManager } from './sweeps.js';

/** A memory DocStore that counts its reads (get) per key. */
function counting<T>(): { mem: DocStore<T>; store: DocStore<T>; reads: Map<string, number> } {
  const mem = createMemoryDocStore<T>();
  const reads = new Map<string, number>();
  const store = {
    ...mem,
    get: (k: string) => {
      reads.set(k, (reads.get(k) ?? 0) + 1);
      return mem.get(k);
    },
  };
  return { mem, store, reads };
}

const HOUR = 3_600_000;

const doc = (id: string, state: RunState, createdAtMs: number): RunDoc => ({
  run: Run.fromPartial({ id, state, createdAtMs, folds: [{ fold: 0, state: FoldState.FOLD_STATE_RUNNING, attempts: 1 }] }),
  tokens: ['tok'],
});

test('the periodic recover() reads an ended run once, not every minute, and all of them again after fullRecoverEveryMs; a ListRuns page reads its runs', async () => {
  const { mem, store: runs, reads } = counting<RunDoc>();
  for (let i = 0; i < 3; i++) await mem.create(runKey(`done${i}`), doc(`done${i}`, RunState.RUN_STATE_SUCCEEDED, 10 + i));
  await mem.create(runKey('live'), doc('live', RunState.RUN_STATE_RUNNING, 1));
  let now = 100 * 3_600_000;
  const c = new Coordinator({
    store: createMemoryObjectStore(),
    queue: createMemoryTaskQueue(),
    runs,
    exportArtifacts: () => Promise.resolve(''),
    now: () => now,
    fullRecoverEveryMs: 3_600_000,
  });
  const count = (id: string): number => reads.get(runKey(id)) ?? 0;
  await c.recover({ requeue: true });
  for (let minute = 1; minute <= 3; minute++) {
    now += 60_000;
    await c.recover();
  }
  assert.deepEqual([count('done0'), count('done2'), count('live')], [1, 1, 4], 'the ended runs were read once, the live one every minute');
  now += 3_600_000;
  await c.recover();
  assert.deepEqual([count('done0'), count('live')], [2, 5], 'a full read after an hour');
  reads.clear();
  const page = await c.listRunsPage({ pageSize: 2, pageToken: '' });
  assert.deepEqual([page.items.map((r) => r.id), page.remaining], [['done2', 'done1'], 2]);
  assert.deepEqual([...reads.keys()].sort(), [runKey('done1'), runKey('done2')], 'only the page was read');
});

/** Sweeps: two settled (SUCCEEDED; CANCELLED with its clean-up done) and one that is not; clustering jobs: two ended, one running. */
async function sweepsAndJobs(now: () => number) {
  const runs = counting<RunDoc>();
  const sweeps = counting<SweepDoc>();
  const jobs = counting<ClusterJobDoc>();
  const sweep = (id: string, state: SweepState, createdAtMs: number, cancelDone = false): SweepDoc => ({
    sweep: Sweep.fromPartial({ id, state, createdAtMs }),
    specs: [],
    ...(cancelDone ? { cancelDone } : {}),
  });
  await sweeps.mem.create(sweepKey('s-done'), sweep('s-done', SweepState.SWEEP_STATE_SUCCEEDED, 3));
  await sweeps.mem.create(sweepKey('s-cancelled'), sweep('s-cancelled', SweepState.SWEEP_STATE_CANCELLED, 2, true));
  // Not settled, and nothing to step (a RUNNING sweep would be stepped, which reads it again).
  await sweeps.mem.create(sweepKey('s-open'), sweep('s-open', SweepState.SWEEP_STATE_UNSPECIFIED, 1));
  const job = (id: string, state: ClusterJobState, createdAtMs: number): ClusterJobDoc => ({
    job: ClusterJob.fromPartial({ id, state, createdAtMs, attempts: 1 }),
    token: '',
    manifest: '',
    sourceCheckpoint: '',
    records: 0,
    finalCheckpoint: '',
  });
  await jobs.mem.create(jobKey('j-done'), job('j-done', ClusterJobState.CLUSTER_JOB_STATE_SUCCEEDED, 3));
  await jobs.mem.create(jobKey('j-failed'), job('j-failed', ClusterJobState.CLUSTER_JOB_STATE_FAILED, 2));
  await jobs.mem.create(jobKey('j-live'), job('j-live', ClusterJobState.CLUSTER_JOB_STATE_RUNNING, 1));
  const store = createMemoryObjectStore();
  const queue = createMemoryTaskQueue();
  const coordinator = new Coordinator({ store, queue, runs: runs.store, exportArtifacts: () => Promise.resolve(''), now });
  const m = new SweepManager({ coordinator, sweeps: sweeps.store, now, fullRecoverEveryMs: HOUR });
  const j = new ClusterJobs({ store, queue, jobs: jobs.store, getRun: (id) => coordinator.getRun(id), now, fullRecoverEveryMs: HOUR });
  return { runs, sweeps, jobs, coordinator, m, j };
}

test('the periodic sweep and clustering-job recoveries read a settled document once, not every minute, and all again after fullRecoverEveryMs', async () => {
  let now = 100 * HOUR;
  const { sweeps, jobs, m, j } = await sweepsAndJobs(() => now);
  const counts = (): number[] =>
    [sweepKey('s-done'), sweepKey('s-cancelled'), sweepKey('s-open')]
      .map((k) => sweeps.reads.get(k) ?? 0)
      .concat([jobKey('j-done'), jobKey('j-failed'), jobKey('j-live')].map((k) => jobs.reads.get(k) ?? 0));
  await m.recover();
  await j.recover({ requeue: true });
  for (let minute = 1; minute <= 3; minute++) {
    now += 60_000;
    await m.recover();
    await j.recover();
  }
  assert.deepEqual(counts(), [1, 1, 4, 1, 1, 4], 'settled sweeps and ended jobs read once, the others every minute');
  now += HOUR;
  await m.recover();
  await j.recover();
  assert.deepEqual(counts(), [2, 2, 5, 2, 2, 5], 'a full read after an hour');
  const cancelling = { sweep: Sweep.fromPartial({ id: 's', state: SweepState.SWEEP_STATE_CANCELLED }), specs: [] };
  assert.deepEqual(
    [sweepSettled(cancelling), sweepSettled({ ...cancelling, cancelDone: true })],
    [false, true],
    'a cancelled sweep settles once its clean-up is done',
  );
});

test('a ListSweeps or ListClusterJobs page reads only its own documents', async () => {
  const { sweeps, jobs, m, j } = await sweepsAndJobs(() => 100 * HOUR);
  await m.recover();
  await j.recover();
  sweeps.reads.clear();
  jobs.reads.clear();
  const sp = await m.listSweepsPage({ pageSize: 1, pageToken: '' });
  const jp = await j.listPage({ pageSize: 2, pageToken: '' });
  assert.deepEqual([sp.items.map((s) => s.id), sp.remaining, jp.items.map((x) => x.id), jp.remaining], [['s-done'], 2, ['j-done', 'j-failed'], 1]);
  assert.deepEqual(
    [[...sweeps.reads.keys()], [...jobs.reads.keys()].sort()],
    [[sweepKey('s-done')], [jobKey('j-done'), jobKey('j-failed')]],
    'only the pages were read',
  );
});

test('start-up reads each run and clustering job once, for both the recovery and the metrics', async () => {
  const { runs, jobs, coordinator, j } = await sweepsAndJobs(() => 100 * HOUR);
  await runs.mem.create(runKey('r-done'), doc('r-done', RunState.RUN_STATE_SUCCEEDED, 2));
  await runs.mem.create(runKey('r-live'), doc('r-live', RunState.RUN_STATE_RUNNING, 1));
  const shown: string[] = [];
  await recoverAtStart({ coordinator, clusterJobs: j, onRun: (r) => shown.push(r.id), onJob: (x) => shown.push(x.id) });
  assert.deepEqual(shown.sort(), ['j-done', 'j-failed', 'j-live', 'r-done', 'r-live'], 'the metrics saw every run and job');
  assert.deepEqual([...runs.reads.values(), ...jobs.reads.values()], [1, 1, 1, 1, 1], 'one read per document');
});
