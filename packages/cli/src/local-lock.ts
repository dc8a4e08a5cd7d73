import { hostname } from 'node:os';
import { link, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CvcError } from '@cvc/core';
import { isOtherProcess, processIdentity } from './process-identity.js';

/** The lock file of a local cluster directory. */
export const LOCK_FILE = 'local-up.lock';

/**
 * What a lock file records about the process holding the directory. Where
 * the OS reports them (Linux /proc), `procStart` (the process's start time in
 * clock ticks since boot) and `bootId` tell that process from another one
 * that got the same pid later (after a crash and a reboot, or a pid
 * wrap-around); locks written before these fields existed lack them.
 */
export interface LockOwner {
  readonly pid: number;
  readonly host: string;
  readonly startedAt: string;
  readonly procStart?: number;
  readonly bootId?: string;
}

/** Codes of LocalLockError. */
export type LocalLockCode = 'LOCAL_CLUSTER_RUNNING' | 'LOCAL_LOCK_FAILED';

/** A second `cvc local up` on a directory a running one holds, or a lock that cannot be taken. */
export class LocalLockError extends CvcError {
  constructor(
    code: LocalLockCode,
    message: string,
    readonly owner?: LockOwner,
  ) {
    super(code, message);
  }
}

/** A held directory lock; release() removes it (only while it is still ours). */
export interface LocalLock {
  readonly file: string;
  readonly owner: LockOwner;
  release(): Promise<void>;
}

/** Whether process `pid` exists on this machine (EPERM: it exists, owned by someone else). */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** How long an unparseable (empty, cut-short) lock counts as being written by a starting owner, not stale. */
export const UNREADABLE_LOCK_GRACE_MS = 10_000;

/** A lock whose owner cannot be read yet: `pid` 0, `young` while its mtime is within UNREADABLE_LOCK_GRACE_MS. */
interface HeldLock extends LockOwner {
  readonly young?: boolean;
}

async function readOwner(file: string): Promise<HeldLock | undefined> {
  let text: string;
  let mtimeMs: number;
  try {
    text = await readFile(file, 'utf8');
    mtimeMs = (await stat(file)).mtimeMs;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const o = JSON.parse(text) as Partial<LockOwner>;
    if (typeof o.pid === 'number') {
      return {
        pid: o.pid,
        host: String(o.host ?? ''),
        startedAt: String(o.startedAt ?? ''),
        ...(typeof o.procStart === 'number' ? { procStart: o.procStart } : {}),
        ...(typeof o.bootId === 'string' && o.bootId !== '' ? { bootId: o.bootId } : {}),
      };
    }
  } catch (err) {
    if (!(err instanceof SyntaxError)) throw err;
  }
  // Unreadable: a write cut short (stale once old), or an owner still writing it (young).
  return { pid: 0, host: '', startedAt: '', young: Date.now() - mtimeMs < UNREADABLE_LOCK_GRACE_MS };
}

/**
 * Takes DIR's lock for `owner` (this process by default): the owner JSON is
 * written to a temp file and hard-linked to the lock path, so the lock never
 * exists without its content and of two `cvc local up` on one directory
 * exactly one wins. A lock whose process is alive is refused at once, naming
 * the directory and the pid; an unparseable one younger than
 * UNREADABLE_LOCK_GRACE_MS counts as held. A stale one (its process is gone,
 * its pid is alive but is another process - the OS reports another start
 * time or boot id than the lock records -, it names our own pid with another
 * start time - a container's pid 1 after a crash - or it is unreadable and
 * old) is moved aside and taken over. The default owner is this process,
 * with its OS start time and boot id where /proc has them.
 */
export async function acquireLocalLock(dir: string, owner?: LockOwner): Promise<LocalLock> {
  owner ??= { pid: process.pid, host: hostname(), startedAt: new Date().toISOString(), ...(await processIdentity(process.pid)) };
  const file = join(dir, LOCK_FILE);
  const temp = `${file}.new-${process.pid}-${Date.now()}`;
  try {
    await writeFile(temp, JSON.stringify(owner) + '\n', { mode: 0o600 });
  } catch (err) {
    throw new LocalLockError('LOCAL_LOCK_FAILED', `cannot write the lock ${temp}: ${(err as Error).message}`);
  }
  try {
    return await takeLock(dir, file, temp, owner);
  } finally {
    await rm(temp, { force: true });
  }
}

/**
 * Whether a lock's owner on this host is still running: its pid is alive and,
 * where the lock records the OS start time / boot id and the OS reports them,
 * they match (otherwise the pid now names an unrelated process). `verified`
 * says whether the identity could be compared (false: only the pid was).
 */
async function ownerRunning(held: LockOwner): Promise<{ running: boolean; verified: boolean }> {
  if (!pidAlive(held.pid)) return { running: false, verified: true };
  if (held.procStart === undefined && held.bootId === undefined) return { running: true, verified: false };
  const now = await processIdentity(held.pid);
  if (isOtherProcess(held, now)) return { running: false, verified: true };
  const verified = held.procStart !== undefined && now.procStart !== undefined;
  return { running: true, verified };
}

async function takeLock(dir: string, file: string, temp: string, owner: LockOwner): Promise<LocalLock> {
  for (let tries = 0; tries < 5; tries++) {
    try {
      await link(temp, file);
      return {
        file,
        owner,
        release: async () => {
          const now = await readOwner(file);
          if (now?.pid === owner.pid && now.startedAt === owner.startedAt) await rm(file, { force: true });
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST')
        throw new LocalLockError('LOCAL_LOCK_FAILED', `cannot create the lock ${file}: ${(err as Error).message}`);
    }
    const held = await readOwner(file);
    if (held === undefined) continue; // released meanwhile: try again
    if (held.young) {
      throw new LocalLockError(
        'LOCAL_CLUSTER_RUNNING',
        `${dir} is being taken by another cvc local up (its lock ${file} is still being written): stop it or choose another --dir`,
      );
    }
    const sameHost = held.host === '' || held.host === owner.host;
    // Our own pid with another start time: a previous life of this pid (pid 1 in a container after a crash).
    const ourOldSelf = sameHost && held.pid === owner.pid && held.startedAt !== owner.startedAt;
    const alive = held.pid > 0 && !ourOldSelf && (sameHost ? await ownerRunning(held) : { running: true, verified: false });
    if (alive && alive.running) {
      // Only the pid could be checked (an old lock, no /proc, another host): it may be a reused pid.
      const unsure = alive.verified
        ? ''
        : sameHost
          ? `; if pid ${held.pid} is not a cvc local up (its pid reused after a crash or a reboot), remove ${file}`
          : `; if no cvc local up runs on ${held.host} any more, remove ${file}`;
      throw new LocalLockError(
        'LOCAL_CLUSTER_RUNNING',
        `${dir} is held by a running local cluster (pid ${held.pid}${held.host ? ` on ${held.host}` : ''}, started ${held.startedAt || 'at an unknown time'}): stop it (Ctrl-C in its terminal, or kill ${held.pid}) or choose another --dir${unsure}`,
        ownerOf(held),
      );
    }
    // Stale: move it aside (atomic, so two takers cannot both win), then retry the exclusive create.
    const aside = `${file}.stale-${process.pid}-${tries}`;
    try {
      await rename(file, aside);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    const moved = await readOwner(aside);
    if (moved && (moved.pid !== held.pid || moved.startedAt !== held.startedAt)) {
      // Another taker replaced the stale lock between our read and our rename: put theirs back.
      await link(aside, file).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw err;
      });
    }
    await rm(aside, { force: true });
  }
  throw new LocalLockError('LOCAL_LOCK_FAILED', `cannot take the lock ${file}: it keeps changing (another cvc local up starting?)`);
}

/** The LockOwner part of a read lock (without the reader's `young`). */
function ownerOf(held: HeldLock): LockOwner {
  return {
    pid: held.pid,
    host: held.host,
    startedAt: held.startedAt,
    ...(held.procStart !== undefined ? { procStart: held.procStart } : {}),
    ...(held.bootId !== undefined ? { bootId: held.bootId } : {}),
  };
}
