import { CvcError, describeError } from '@cvc/core';
import type { ReportBadCheckpointResponse } from '@cvc/proto';
import { StorageError } from '@cvc/storage';
import { WorkerError } from './errors.js';
import { isBadCheckpoint } from './failures.js';

/** Downloads of a checkpoint the worker found missing and the coordinator says is stored, before the attempt fails. */
export const MISSING_CHECKPOINT_TRIES = 3;

/**
 * The reason a ReportBadCheckpoint carries: `CODE: message` for cvc's typed
 * errors (`NOT_FOUND: …` for a missing object, which the coordinator checks
 * against the store before it drops the checkpoint), else the message.
 */
export function badCheckpointReason(err: unknown): string {
  return err instanceof CvcError ? `${err.code}: ${describeError(err)}` : describeError(err);
}

const isMissing = (err: unknown): boolean => err instanceof StorageError && err.code === 'NOT_FOUND';

/** What a resume with fallback needs of its caller. */
export interface CheckpointFallback<T> {
  /** Reads checkpoint `key` and resumes from it; rejects with the checkpoint's fault when it cannot be used. */
  load(key: string): Promise<T>;
  /** Whether `err` from `load` is the checkpoint's fault (default `isBadCheckpoint`: gone, corrupt, another model). */
  readonly isBad?: (err: unknown) => boolean;
  /** ReportBadCheckpoint for `bad`, with `reason`: the coordinator's answer. */
  report(bad: string, reason: string): Promise<ReportBadCheckpointResponse>;
  /** Told before each fallback to `next` (the warning naming the checkpoint). */
  onFallback(bad: string, err: unknown, next: ReportBadCheckpointResponse): void;
  /** Told before a download the worker found missing is tried again because the coordinator has the object (`tries` so far). */
  onRetryMissing(key: string, err: unknown, tries: number): void;
  /** Waits before such a retry (default: a timer of `ms`). */
  readonly sleep?: (ms: number) => Promise<void>;
}

/**
 * Resumes from `first` and, while the checkpoint cannot be used, from the
 * one the coordinator answers instead (its newest older one), until one
 * loads: its value, or undefined when the answer is a fresh start ('').
 * A checkpoint found missing that the coordinator answers again (it is in
 * the store) is downloaded again, up to MISSING_CHECKPOINT_TRIES in all,
 * then the NOT_FOUND is thrown (the attempt fails and is retried later); a
 * corrupt one offered again is WorkerError BAD_CHECKPOINT. Other failures of
 * `load` are thrown as they are.
 */
export async function resumeWithFallback<T>(first: string, o: CheckpointFallback<T>): Promise<T | undefined> {
  const tries = new Map<string, number>();
  const bad = o.isBad ?? isBadCheckpoint;
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  let key = first;
  while (key) {
    const n = (tries.get(key) ?? 0) + 1;
    tries.set(key, n);
    try {
      return await o.load(key);
    } catch (err) {
      if (!bad(err)) throw err;
      const next = await o.report(key, badCheckpointReason(err));
      if (next.resumeCheckpoint === key && isMissing(err)) {
        if (n >= MISSING_CHECKPOINT_TRIES) throw err;
        o.onRetryMissing(key, err, n);
        await sleep(1000 * n);
        continue;
      }
      if (tries.has(next.resumeCheckpoint))
        throw new WorkerError('BAD_CHECKPOINT', `the coordinator offered checkpoint ${next.resumeCheckpoint} again after it could not be used`);
      o.onFallback(key, err, next);
      key = next.resumeCheckpoint;
    }
  }
  return undefined;
}
