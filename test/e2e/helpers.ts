import { credentials, type ServiceError } from '@grpc/grpc-js';
import type { Run} from '@cvc/proto';
import { RunServiceClient } from '@cvc/proto';
import { createObjectStore, type ObjectStore } from '@cvc/storage';
import type { LocalCluster } from '@cvc/cli';

export function runClient(cluster: LocalCluster): RunServiceClient {
  return new RunServiceClient(cluster.endpoints.coordinator, credentials.createInsecure());
}

export function getRun(c: RunServiceClient, runId: string): Promise<Run> {
  return new Promise((resolve, reject) => c.getRun({ runId }, (e: ServiceError | null, r: Run) => (e ? reject(e) : resolve(r))));
}

export function storeOf(cluster: LocalCluster): ObjectStore {
  return createObjectStore(cluster.endpoints.s3);
}

/** Polls until `pred` holds (bounded: fails after `ms`). */
export async function until<T>(what: string, fn: () => Promise<T>, pred: (v: T) => boolean, ms = 120_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (pred(v)) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
