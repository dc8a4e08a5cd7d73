import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLocalCluster, threadsPerWorker } from './local-cluster.js';
import { LOCK_FILE } from './local-lock.js';

/** The commands of this process's live child processes. */
function childCommands(): string[] {
  let out: string;
  try {
    out = execFileSync('ps', ['-o', 'comm=', '--ppid', String(process.pid)], { encoding: 'utf8' });
  } catch (err) {
    // ps exits 1 when no process matches.
    if ((err as { status?: number }).status === 1) return [];
    throw err;
  }
  return out
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && l !== 'ps');
}

/** Listening servers of this process (the in-process S3 server is one). */
function listeningServers(): number {
  const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles();
  return handles.filter((h) => h instanceof Server && h.listening).length;
}

test("local workers divide the machine's cores between them (each at least 1, at most 64)", () => {
  assert.equal(threadsPerWorker(1, 8), 8);
  assert.equal(threadsPerWorker(2, 8), 4);
  assert.equal(threadsPerWorker(3, 8), 2);
  assert.equal(threadsPerWorker(4, 2), 1);
  assert.equal(threadsPerWorker(0, 4), 4);
  assert.equal(threadsPerWorker(1, 256), 64);
});

test('a local cluster whose coordinator fails to start stops the nats-server and S3 server it started, then releases the lock', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-local-cluster-'));
  const before = listeningServers();
  const saved = process.env.CVC_COORDINATOR_BIN;
  process.env.CVC_COORDINATOR_BIN = '/bin/false';
  try {
    await assert.rejects(startLocalCluster({ dir, workers: 0 }), { code: 'COORDINATOR_START' });
    assert.deepEqual(
      childCommands().filter((c) => c.includes('nats-server')),
      [],
      'no nats-server left running',
    );
    assert.equal(listeningServers(), before, 'no S3 server left listening');
    await assert.rejects(readFile(join(dir, LOCK_FILE)), { code: 'ENOENT' });
  } finally {
    if (saved === undefined) delete process.env.CVC_COORDINATOR_BIN;
    else process.env.CVC_COORDINATOR_BIN = saved;
    await rm(dir, { recursive: true, force: true });
  }
});
