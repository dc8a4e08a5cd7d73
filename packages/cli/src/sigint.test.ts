import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ServerUnaryCall, type ServerWritableStream, type sendUnaryData } from '@grpc/grpc-js';
import { randomImageSet, writeIdxDataset } from '@cvc/data/testing';
import { FoldState, Run, RunServiceService, RunState, type GetRunRequest, RunEvent, type RunServiceServer, type WatchRunRequest } from '@cvc/proto';
import { fakeCoordinatorFile } from './testing.js';
import { LOCK_FILE, pidAlive } from './local-lock.js';

const BIN = fileURLToPath(new URL('../bin/cvc.js', import.meta.url));

/** The CLI in a child process, with its output collected. */
function cvc(args: string[], env: NodeJS.ProcessEnv = {}): { p: ChildProcess; out(): string; err(): string; exit: Promise<number | null> } {
  const p = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let o = '';
  let e = '';
  p.stdout?.on('data', (c: Buffer) => (o += c.toString()));
  p.stderr?.on('data', (c: Buffer) => (e += c.toString()));
  const exit = new Promise<number | null>((r) => p.once('exit', (code) => r(code)));
  return { p, out: () => o, err: () => e, exit };
}

async function until(what: string, pred: () => boolean, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function run(): Run {
  return Run.fromPartial({
    id: 'r-sig',
    state: RunState.RUN_STATE_RUNNING,
    spec: { dataset: 'fashion-mnist', model: 'seed-mnist', epochs: 3, folds: 2 },
    folds: [
      {
        fold: 0,
        state: FoldState.FOLD_STATE_RUNNING,
        attempts: 1,
        progress: { epoch: 1, epochs: 3, images: 800, totalImages: 4800, imagesPerSec: 200, loss: 0.3, etaSeconds: 70, updatedAtMs: 1 },
      },
      { fold: 1, state: FoldState.FOLD_STATE_PENDING },
    ],
  });
}

/** A RunService whose WatchRun sends one event and then stays open; it records cancelled streams. */
async function fakeCoordinator(dir: string): Promise<{ file: string; cancelled: () => number; close(): void }> {
  let cancelled = 0;
  const impl: Partial<RunServiceServer> = {
    watchRun: (call: ServerWritableStream<WatchRunRequest, RunEvent>) => {
      call.on('cancelled', () => cancelled++);
      call.write(RunEvent.fromPartial({ run: run() }));
    },
    getRun: (_call: ServerUnaryCall<GetRunRequest, Run>, cb: sendUnaryData<Run>) => cb(null, run()),
  };
  const { file, close } = await fakeCoordinatorFile(dir, (s) => {
    s.addService(RunServiceService, impl as RunServiceServer);
  });
  return { file, cancelled: () => cancelled, close };
}

test('Ctrl-C stops run watch at once: the stream is cancelled, the run goes on, exit 130; progress lines are plain without a terminal', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-sig-'));
  const coord = await fakeCoordinator(dir);
  try {
    const w = cvc(['run', 'watch', 'r-sig', '--cluster', coord.file]);
    await until('the first progress line', () => /fold 0 epoch 1\/3/.test(w.err()));
    assert.match(w.err(), /^fold 0 epoch 1\/3 800\/4800 images {2}200 img\/s {2}eta 1m10s {2}loss 0\.30000$/m);
    assert.doesNotMatch(w.err(), /[\r\x1b]/);
    w.p.kill('SIGINT');
    assert.equal(await w.exit, 130, w.err());
    assert.match(w.err(), /watching run r-sig was cancelled/);
    assert.match(w.err(), /the run goes on/);
    await until('the server to see the stream cancelled', () => coord.cancelled() === 1, 10_000);

    // --json of the same run, through the real CLI: zero values and empty lists are there.
    const show = cvc(['run', 'show', 'r-sig', '--json', '--cluster', coord.file]);
    assert.equal(await show.exit, 0, show.err());
    const json = JSON.parse(show.out()) as { folds: { fold: number; attempts: number; history: unknown[] }[] };
    assert.equal(json.folds[0]?.fold, 0);
    assert.equal(json.folds[1]?.attempts, 0);
    assert.deepEqual(json.folds[1]?.history, []);
  } finally {
    coord.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('Ctrl-C stops cv --local after the current batch with exit 130 and a resume hint', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-sig-'));
  try {
    await writeIdxDataset(join(dir, 'data'), randomImageSet(40, 28, 28, 1, 1), randomImageSet(12, 28, 28, 1, 2));
    const c = cvc(
      [
        'cv',
        '--local',
        '--dataset',
        join(dir, 'data'),
        '--model',
        'seed-mnist',
        '--folds',
        '2',
        '--epochs',
        '500',
        '--batch-size',
        '8',
        '--backend',
        'wasm',
        '--out',
        join(dir, 'run'),
      ],
      { CVC_CACHE_DIR: join(dir, 'cache') },
    );
    await until('the first epoch', () => /fold 0 epoch 1\/500 +loss/.test(c.err()), 120_000);
    c.p.kill('SIGINT');
    assert.equal(await c.exit, 130, c.err());
    assert.match(c.err(), /was cancelled; finished epochs are checkpointed, re-run the same command to resume/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('local up: a second one on the same directory is refused naming it and the pid; Ctrl-C stops everything (exit 130, no process left, lock gone)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-sig-'));
  const local = join(dir, 'local');
  const up = cvc(['local', 'up', '--workers', '0', '--dir', local], { CVC_CACHE_DIR: join(dir, 'cache') });
  try {
    await until('the cluster to be up', () => up.out().includes('Ctrl-C stops everything.') || up.p.exitCode !== null, 120_000);
    assert.ok(up.out().includes('Ctrl-C stops everything.'), up.err());
    const lock = JSON.parse(await readFile(join(local, LOCK_FILE), 'utf8')) as { pid: number };
    assert.equal(lock.pid, up.p.pid);
    const children = execFileSync('ps', ['-o', 'pid=', '--ppid', String(up.p.pid)], { encoding: 'utf8' })
      .trim()
      .split(/\s+/)
      .map(Number);
    assert.ok(children.length >= 2, `nats-server and the coordinator run under ${up.p.pid}: ${children.join(',')}`);

    const second = cvc(['local', 'up', '--workers', '0', '--dir', local]);
    assert.equal(await second.exit, 1, second.err());
    assert.ok(second.err().includes(local), second.err());
    assert.ok(second.err().includes(`pid ${up.p.pid}`), second.err());

    up.p.kill('SIGINT');
    assert.equal(await up.exit, 130, up.err());
    assert.match(up.out(), /stopping the local cluster/);
    assert.doesNotMatch(up.out() + up.err(), /interrupted/);
    for (const pid of children) assert.equal(pidAlive(pid), false, `process ${pid} was left running`);
    await assert.rejects(readFile(join(local, LOCK_FILE)), { code: 'ENOENT' });
  } finally {
    if (up.p.exitCode === null) up.p.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
});
