import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { type ServerUnaryCall, type ServerWritableStream, type sendUnaryData } from '@grpc/grpc-js';
import {
  ClusterJobServiceService,
  Run,
  RunEvent,
  RunServiceService,
  RunState,
  SweepServiceService,
  type ClusterJobServiceServer,
  type ListClusterJobsResponse,
  type ListRunsResponse,
  type ListSweepsResponse,
  type RunServiceServer,
  type SweepServiceServer,
  type WatchRunRequest,
} from '@cvc/proto';
import { main } from './index.js';
import { captureEnv, fakeCoordinatorFile } from './testing.js';

/**
 * A coordinator with nothing in it: every list is empty, and WatchRun sends
 * one snapshot of a pending run and then nothing (the stream stays open).
 */
async function quietCoordinator(dir: string): Promise<{ file: string; watching: Promise<void>; close(): void }> {
  let watched!: () => void;
  const watching = new Promise<void>((r) => (watched = r));
  const runs: Partial<RunServiceServer> = {
    listRuns: (_c: ServerUnaryCall<unknown, ListRunsResponse>, cb: sendUnaryData<ListRunsResponse>) => cb(null, { runs: [], nextPageToken: '', remaining: 0 }),
    watchRun: (call: ServerWritableStream<WatchRunRequest, RunEvent>) => {
      call.write(RunEvent.fromPartial({ run: Run.fromPartial({ id: call.request.runId, state: RunState.RUN_STATE_PENDING }) }));
      watched();
    },
  };
  const sweeps: Partial<SweepServiceServer> = {
    listSweeps: (_c: ServerUnaryCall<unknown, ListSweepsResponse>, cb: sendUnaryData<ListSweepsResponse>) =>
      cb(null, { sweeps: [], nextPageToken: '', remaining: 0 }),
  };
  const jobs: Partial<ClusterJobServiceServer> = {
    listClusterJobs: (_c: ServerUnaryCall<unknown, ListClusterJobsResponse>, cb: sendUnaryData<ListClusterJobsResponse>) =>
      cb(null, { jobs: [], nextPageToken: '', remaining: 0 }),
  };
  const { file, close } = await fakeCoordinatorFile(dir, (s) => {
    s.addService(RunServiceService, runs as RunServiceServer);
    s.addService(SweepServiceService, sweeps as SweepServiceServer);
    s.addService(ClusterJobServiceService, jobs as ClusterJobServiceServer);
  });
  return { file, watching, close };
}

test('the list commands of an empty cluster say there is nothing yet and how to start one, not a bare header', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-empty-'));
  const fake = await quietCoordinator(dir);
  try {
    for (const [argv, line] of [
      [['run', 'list'], 'no runs yet (cvc run submit --dataset NAME --model M starts one)'],
      [['sweep', 'list'], 'no sweeps yet (cvc sweep submit --dataset NAME --model M --grid NAME=V1,V2 starts one)'],
      [['cluster-job', 'list'], 'no clustering jobs yet (cvc cluster-job submit RUN --method dcec starts one)'],
    ] as const) {
      const env = captureEnv(dir);
      assert.equal(await main([...argv, '--cluster', fake.file], env, { handleSignals: false }), 0, env.err());
      assert.equal(env.out(), `${line}\n`);
      // --json stays a list for scripts.
      const json = captureEnv(dir);
      assert.equal(await main([...argv, '--json', '--cluster', fake.file], json, { handleSignals: false }), 0, json.err());
      assert.deepEqual(JSON.parse(json.out()), []);
    }
  } finally {
    fake.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('a watch that has nothing to write notices its stdout closing and stops with exit 141', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-quiet-watch-'));
  const fake = await quietCoordinator(dir);
  // A stdout whose reader goes away once `gone` is set (a socket: an empty write then fails with EPIPE, as Node's child stdio does).
  let gone = false;
  const stdout = new Writable({
    write(_chunk, _enc, cb) {
      cb(gone ? Object.assign(new Error('write EPIPE'), { code: 'EPIPE', errno: -32, syscall: 'write' }) : null);
    },
  });
  const env = { ...captureEnv(dir), stdout };
  try {
    const code = main(['run', 'watch', 'r-1', '--cluster', fake.file], env, { handleSignals: false, outputProbeMs: 20 });
    await fake.watching;
    gone = true;
    // Without the probe the watch would wait for the run for good: give up after a generous bound, as a failure.
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<string>((r) => (timer = setTimeout(() => r('still watching after 30 s'), 30_000)));
    assert.equal(await Promise.race([code, bound]), 141);
    clearTimeout(timer);
    assert.doesNotMatch(env.err(), /unexpected error|\n\s+at /);
  } finally {
    fake.close();
    await rm(dir, { recursive: true, force: true });
  }
});
