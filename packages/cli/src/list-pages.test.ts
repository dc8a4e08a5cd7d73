import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ServerUnaryCall, type sendUnaryData } from '@grpc/grpc-js';
import { Run, RunServiceService, RunState, type ListRunsRequest, type ListRunsResponse, type RunServiceServer } from '@cvc/proto';
import { main } from './index.js';
import { captureEnv, fakeCoordinatorFile } from './testing.js';
import { fetchPages } from './list-pages.js';

/** A RunService whose ListRuns pages `n` runs r<n-1>..r0 as the coordinator does (a token is the next index here); `asked` records each request. */
async function fakeRuns(dir: string, n: number) {
  const asked: ListRunsRequest[] = [];
  const runs = Array.from({ length: n }, (_, i) => Run.fromPartial({ id: `r${n - 1 - i}`, state: RunState.RUN_STATE_SUCCEEDED }));
  const impl: Partial<RunServiceServer> = {
    listRuns: (call: ServerUnaryCall<ListRunsRequest, ListRunsResponse>, cb: sendUnaryData<ListRunsResponse>) => {
      asked.push(call.request);
      const from = Number(call.request.pageToken || 0);
      const to = call.request.pageSize === 0 ? n : Math.min(n, from + call.request.pageSize);
      cb(null, { runs: runs.slice(from, to), nextPageToken: to < n ? String(to) : '', remaining: n - to });
    },
  };
  const { file, close } = await fakeCoordinatorFile(dir, (s) => {
    s.addService(RunServiceService, impl as RunServiceServer);
  });
  return { file, asked, close };
}

test('run list prints the newest 50 and says how many more; --limit N and --all (which follows the pages); bad values exit 2', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-list-'));
  const fake = await fakeRuns(dir, 120);
  try {
    const cluster = ['--cluster', fake.file];
    const rows = (out: string): string[] => out.split('\n').filter((l) => /^r\d+ /.test(l));
    const def = captureEnv(dir);
    assert.equal(await main(['run', 'list', ...cluster], def), 0, def.err());
    assert.deepEqual([rows(def.out()).length, rows(def.out())[0]?.split(' ')[0]], [50, 'r119']);
    assert.match(def.err(), /… 70 more; cvc run list --all or --limit N lists them/);
    const some = captureEnv(dir);
    assert.equal(await main(['run', 'list', '--limit', '3', ...cluster], some), 0, some.err());
    assert.deepEqual(
      rows(some.out()).map((l) => l.split(' ')[0]),
      ['r119', 'r118', 'r117'],
    );
    assert.match(some.err(), /… 117 more/);
    fake.asked.length = 0;
    const all = captureEnv(dir);
    assert.equal(await main(['run', 'list', '--all', ...cluster], all), 0, all.err());
    assert.equal(rows(all.out()).length, 120);
    assert.doesNotMatch(all.err(), /more/);
    assert.deepEqual(
      fake.asked.map((r) => r.pageSize),
      [1000],
    );
    for (const bad of [
      ['--limit', '0'],
      ['--limit', '2', '--all'],
      ['--limit', 'x'],
    ]) {
      const e = captureEnv(dir);
      assert.equal(await main(['run', 'list', ...bad, ...cluster], e), 2, bad.join(' '));
    }
    const misplaced = captureEnv(dir);
    assert.equal(await main(['run', 'show', 'r1', '--all', ...cluster], misplaced), 2);
    assert.match(misplaced.err(), /--all applies to run list/);
  } finally {
    fake.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('fetchPages follows tokens until the limit, and cuts the whole list a coordinator from before paging answers', async () => {
  const pages = [
    { items: [1, 2], nextPageToken: 'a', remaining: 3 },
    { items: [3, 4], nextPageToken: 'b', remaining: 1 },
    { items: [5], nextPageToken: '', remaining: 0 },
  ];
  const sizes: number[] = [];
  const paged = (req: { pageSize: number; pageToken: string }) => {
    sizes.push(req.pageSize);
    return Promise.resolve(pages[req.pageToken === '' ? 0 : req.pageToken === 'a' ? 1 : 2]!);
  };
  assert.deepEqual(await fetchPages({ limit: 3 }, paged), { items: [1, 2, 3], more: 2 });
  assert.deepEqual(sizes, [3, 1]);
  assert.deepEqual(await fetchPages({ limit: Number.POSITIVE_INFINITY }, paged), { items: [1, 2, 3, 4, 5], more: 0 });
  const old = () => Promise.resolve({ items: [1, 2, 3, 4, 5], nextPageToken: '', remaining: 0 });
  assert.deepEqual(await fetchPages({ limit: 2 }, old), { items: [1, 2], more: 3 });
});
