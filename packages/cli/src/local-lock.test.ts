import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquireLocalLock, LocalLockError, LOCK_FILE, pidAlive, type LockOwner } from './local-lock.js';
import { parseProcStart, processIdentity } from './process-identity.js';

/** Linux-style /proc with start times and a boot id (elsewhere only the pid is checked). */
const hasProc = existsSync('/proc/self/stat') && existsSync('/proc/sys/kernel/random/boot_id');

async function deadPid(): Promise<number> {
  const p = spawn(process.execPath, ['-e', '0']);
  await new Promise((r) => p.once('exit', r));
  return p.pid as number;
}

test('a second lock on a held directory is refused at once, naming the directory and the pid', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-lock-'));
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
  try {
    const first = await acquireLocalLock(dir, { pid: child.pid as number, host: hostname(), startedAt: '2026-12-01T09:00:00.000Z' });
    await assert.rejects(acquireLocalLock(dir), (err: unknown) => {
      assert.ok(err instanceof LocalLockError);
      assert.equal(err.code, 'LOCAL_CLUSTER_RUNNING');
      assert.ok(err.message.includes(dir), err.message);
      assert.ok(err.message.includes(`pid ${child.pid}`), err.message);
      return true;
    });
    await first.release();
    const again = await acquireLocalLock(dir);
    assert.equal((JSON.parse(await readFile(join(dir, LOCK_FILE), 'utf8')) as { pid: number }).pid, process.pid);
    await again.release();
    await assert.rejects(readFile(join(dir, LOCK_FILE)), { code: 'ENOENT' });
  } finally {
    child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
});

test('a stale lock (its process is gone) or an unreadable one is taken over', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-lock-'));
  try {
    const pid = await deadPid();
    assert.equal(pidAlive(pid), false);
    await writeFile(join(dir, LOCK_FILE), JSON.stringify({ pid, host: hostname(), startedAt: 'earlier' }));
    const lock = await acquireLocalLock(dir);
    assert.equal((JSON.parse(await readFile(join(dir, LOCK_FILE), 'utf8')) as { pid: number }).pid, process.pid);
    await lock.release();
    await writeFile(join(dir, LOCK_FILE), '{"pid": 12');
    const old = new Date(Date.now() - 60_000);
    await utimes(join(dir, LOCK_FILE), old, old);
    const over = await acquireLocalLock(dir);
    assert.equal(over.owner.pid, process.pid);
    await over.release();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('releasing does not remove a lock another process has taken since', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-lock-'));
  try {
    const mine = await acquireLocalLock(dir);
    const other = JSON.stringify({ pid: 1, host: hostname(), startedAt: 'later' });
    await writeFile(join(dir, LOCK_FILE), other);
    await mine.release();
    assert.equal(await readFile(join(dir, LOCK_FILE), 'utf8'), other);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('an empty or unparseable lock written moments ago is held (its owner is still writing it), not taken over', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-lock-'));
  try {
    await writeFile(join(dir, LOCK_FILE), '');
    await assert.rejects(acquireLocalLock(dir), (err: unknown) => err instanceof LocalLockError && err.code === 'LOCAL_CLUSTER_RUNNING');
    assert.equal(await readFile(join(dir, LOCK_FILE), 'utf8'), '');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the lock file never exists without its owner: it is linked from a complete temp file, which is removed', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-lock-'));
  try {
    const owner = { pid: process.pid, host: hostname(), startedAt: '2026-12-01T10:00:00.000Z' };
    const takes = await Promise.allSettled([acquireLocalLock(dir, owner), acquireLocalLock(dir, owner), acquireLocalLock(dir, owner)]);
    assert.equal(takes.filter((t) => t.status === 'fulfilled').length, 1);
    assert.deepEqual(JSON.parse(await readFile(join(dir, LOCK_FILE), 'utf8')), owner);
    assert.deepEqual(await readdir(dir), [LOCK_FILE]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a stale lock naming our own pid with another start time (pid 1 in a container after a crash) is taken over', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-lock-'));
  try {
    await writeFile(join(dir, LOCK_FILE), JSON.stringify({ pid: process.pid, host: hostname(), startedAt: '2026-11-30T08:00:00.000Z' }));
    const lock = await acquireLocalLock(dir);
    assert.equal((JSON.parse(await readFile(join(dir, LOCK_FILE), 'utf8')) as { startedAt: string }).startedAt, lock.owner.startedAt);
    await lock.release();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the start time is field 22 of /proc/PID/stat, counted after the command even when it holds spaces and parentheses', () => {
  const fields = Array.from({ length: 50 }, (_, i) => String(i + 3)); // fields 3.. after the command
  fields[19] = '3065794';
  assert.equal(parseProcStart(`4242 (a) b (c) ${fields.join(' ')}\n`), 3065794);
  assert.equal(parseProcStart('4242 (cut short) R 1 2'), undefined);
  assert.equal(parseProcStart('garbage'), undefined);
});

test('the default owner records its OS start time and boot id where /proc has them', { skip: !hasProc && 'no Linux /proc' }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-lock-'));
  try {
    const lock = await acquireLocalLock(dir);
    const written = JSON.parse(await readFile(join(dir, LOCK_FILE), 'utf8')) as LockOwner;
    const self = await processIdentity(process.pid);
    assert.equal(typeof written.procStart, 'number');
    assert.equal(written.procStart, self.procStart);
    assert.equal(written.bootId, (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim());
    await lock.release();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test(
  'a lock whose pid is alive but now another process (other start time or boot id) is stale and taken over',
  { skip: !hasProc && 'no Linux /proc' },
  async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cvc-lock-'));
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
    try {
      const pid = child.pid as number;
      const real = await processIdentity(pid);
      assert.ok(real.procStart !== undefined && real.bootId !== undefined);
      const base = { pid, host: hostname(), startedAt: '2026-12-01T09:00:00.000Z' };
      // The pid was reused: the recorded process started at another tick of this boot.
      for (const recorded of [
        { ...base, procStart: real.procStart + 1, bootId: real.bootId },
        { ...base, procStart: real.procStart, bootId: '00000000-0000-0000-0000-000000000000' }, // before a reboot
        { ...base, procStart: real.procStart + 7 }, // no boot id recorded
      ]) {
        await writeFile(join(dir, LOCK_FILE), JSON.stringify(recorded));
        const lock = await acquireLocalLock(dir);
        assert.equal((JSON.parse(await readFile(join(dir, LOCK_FILE), 'utf8')) as LockOwner).pid, process.pid, JSON.stringify(recorded));
        await lock.release();
      }
      assert.equal(pidAlive(pid), true);
      // The same pid with its real identity is the owner still running: refused, naming the directory and the pid.
      await writeFile(join(dir, LOCK_FILE), JSON.stringify({ ...base, ...real }));
      await assert.rejects(acquireLocalLock(dir), (err: unknown) => {
        assert.ok(err instanceof LocalLockError);
        assert.equal(err.code, 'LOCAL_CLUSTER_RUNNING');
        assert.ok(err.message.includes(dir) && err.message.includes(`pid ${pid}`), err.message);
        assert.ok(!err.message.includes('remove'), err.message);
        assert.equal(err.owner?.procStart, real.procStart);
        return true;
      });
    } finally {
      child.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    }
  },
);

test('an old lock without the OS start time keeps the pid check, and its refusal says how to clear a reused pid', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-lock-'));
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
  try {
    const file = join(dir, LOCK_FILE);
    await writeFile(file, JSON.stringify({ pid: child.pid, host: hostname(), startedAt: '2026-11-30T08:00:00.000Z' }));
    await assert.rejects(acquireLocalLock(dir), (err: unknown) => {
      assert.ok(err instanceof LocalLockError && err.code === 'LOCAL_CLUSTER_RUNNING');
      assert.ok(err.message.includes(`pid ${child.pid}`) && err.message.includes(`remove ${file}`), err.message);
      return true;
    });
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const lock = await acquireLocalLock(dir);
    assert.equal(lock.owner.pid, process.pid);
    await lock.release();
  } finally {
    child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
});
