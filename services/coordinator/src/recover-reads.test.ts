// How many run documents the periodic recovery and a ListRuns page read:
// ended runs are not read again every minute, a page reads its own runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FoldState, Run, RunState } from '@cvc/proto';
import { createMemoryDocStore, createMemoryObjectStore, createMemoryTaskQueue } from '@cvc/testkit';
import { Coordinator } from './coordinator.js';
import { runKey, type RunDoc } from './run-doc.js';

const doc = (id: string, state: RunState, createdAtMs: number): RunDoc => ({
  run: Run.fromPartial({ id, state, createdAtMs, folds: [{ fold: 0, state: FoldState.FOLD_STATE_RUNNING, attempts: 1 }] }),
  tokens: ['tok'],
});

test('the periodic recover() reads an ended run once, not every minute, and all of them again after fullRecoverEveryMs; a ListRuns page reads its runs', async () => {
  const mem = createMemoryDocStore<RunDoc>();
  const reads = new Map<string, number>();
  const runs = {
    ...mem,
    get: (k: string) => {
      reads.set(k, (reads.get(k) ?? 0) + 1);
      return mem.get(k);
    },
  };
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
