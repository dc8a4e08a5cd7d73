import type { ObjectStore } from '@cvc/storage';

/**
 * Whether a ReportBadCheckpoint's reason says the worker found no object at
 * the key (its download gave StorageError NOT_FOUND). Workers send the
 * reason as `CODE: message` (services/worker checkpoint-fallback.ts); the
 * request has no field for the code, so the prefix is the contract. A
 * reason from an older worker without it counts as "cannot be used".
 */
export const claimsMissing = (reason: string): boolean => /^NOT_FOUND\b/.test(reason);

/**
 * The worker's word on a checkpoint, checked where it can be: a checkpoint
 * it says is missing is looked up in the store first (its S3 view may differ,
 * or a read may have raced a write), and one that is there is not dropped.
 * True when the checkpoint is to be given up (missing in fact, or reported
 * as corrupt or of another model, which only reading it shows).
 */
export async function confirmBadCheckpoint(store: ObjectStore, key: string, reason: string): Promise<boolean> {
  if (!claimsMissing(reason)) return true;
  return (await store.stat(key)) === undefined;
}
